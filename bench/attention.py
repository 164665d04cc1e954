"""The student's temporal block at long windows: Performer (FAVOR+) against standard softmax attention.

Both blocks have the student's temporal shape (student/model.py: dim 128, 4 heads of 32, depth 2,
pre-LayerNorm, biased q/k/v/out projections, a GELU feed-forward 4x wide, residuals). One is
``performer_pytorch.Performer``, non-causal with the student's nb_features, built as the student
builds it; the reference is the same layers with plain ``softmax(Q K^T / sqrt(d)) V``, which
materialises the (heads, W, W) matrix, loaded with the Performer's weights, so FAVOR+ approximates
exactly this block (their gap is reported). For information, a third column runs the same block
through torch's fused ``scaled_dot_product_attention``, which never holds the W x W matrix.

Batch 1, forward only, inference mode. Time: median of repeated forwards after a warm-up. Peak
memory (torch's CPU allocations are invisible to tracemalloc): each (W, block) runs in a fresh
process; on CPU, once a tiny warm-up forward has loaded every kernel and thread pool, the heap's
free pages go back to the OS (malloc_trim), the peak resident set is reset to the current one
(/proc/self/clear_refs), and its growth over one forward is the peak: every page the forward
touches counts, the (heads, W, W) matrix included, and nothing earlier does (without clear_refs:
the growth of ru_maxrss). On CUDA, the growth of torch.cuda.max_memory_allocated over one forward.
A run whose memory estimate exceeds 80 % of the memory available, or whose time projected from the
previous W exceeds ``--max-seconds``, is reported as skipped with the reason.

    ./dev.sh bench attention [--windows 64 512 4096 16384] [--threads N] [--device cpu|cuda]

Prints one JSON line. Target at W = 4096: Performer at least 3x faster than softmax attention, with
at most 25 % of its peak memory.
"""
from __future__ import annotations

import os

_THREADS = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, _THREADS)   # all cores unless told, before numpy and torch load
# Idle threads sleep rather than spin: on a shared machine a spinning thread that has lost its core
# stalls every parallel region (the Performer's many small ops ran 10x slower on 2 busy cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from einops import rearrange  # noqa: E402
from performer_pytorch import Performer  # noqa: E402
from torch import nn  # noqa: E402

from bench.machine import machine  # noqa: E402
from ros2_radar_pose.student.model import StudentConfig  # noqa: E402

KINDS = ("performer", "softmax", "sdpa")
TARGET_WINDOW, TARGET_SPEEDUP, TARGET_FRACTION = 4096, 3.0, 0.25
MIB = 2 ** 20


class SoftmaxAttention(nn.Module):
    """Multi-head self-attention, exact: softmax(Q K^T / sqrt(d)) V over all W frames."""

    def __init__(self, dim: int, heads: int, dim_head: int, fused: bool = False):
        super().__init__()
        self.heads, self.scale, self.fused = heads, dim_head ** -0.5, fused
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, heads * dim_head) for _ in range(3))
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(f(x), "b n (h d) -> b h n d", h=self.heads) for f in (self.to_q, self.to_k, self.to_v))
        if self.fused:
            out = nn.functional.scaled_dot_product_attention(q, k, v)
        else:       # scaling q rather than the scores keeps one (b, h, W, W) matrix fewer alive
            out = ((q * self.scale) @ k.transpose(-1, -2)).softmax(dim=-1) @ v
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class SoftmaxTransformer(nn.Module):
    """performer_pytorch.Performer's layer layout with exact attention: (B, W, dim) -> (B, W, dim)."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, ff_mult: int = 4, fused: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList([
            nn.LayerNorm(dim), SoftmaxAttention(dim, heads, dim_head, fused), nn.LayerNorm(dim),
            nn.Sequential(nn.Linear(dim, dim * ff_mult), nn.GELU(), nn.Linear(dim * ff_mult, dim)),
        ]) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention_norm, attention, ff_norm, ff in self.layers:
            x = x + attention(attention_norm(x))
            x = x + ff(ff_norm(x))
        return x

    @torch.no_grad()
    def load_performer(self, performer: Performer) -> SoftmaxTransformer:
        """Take the Performer's weights (its FAVOR+ random features have no counterpart here)."""
        for (attention_norm, attention, ff_norm, ff), (theirs, theirs_ff) in zip(self.layers, performer.net.layers):
            # Performer wraps each sublayer: PreLayerNorm(norm, fn), the feed-forward also in Chunk(fn)
            pairs = [(attention_norm, theirs.norm), (ff_norm, theirs_ff.norm),
                     (ff[0], theirs_ff.fn.fn.w1), (ff[2], theirs_ff.fn.fn.w2)]
            pairs += [(getattr(attention, n), getattr(theirs.fn, n)) for n in ("to_q", "to_k", "to_v", "to_out")]
            for mine, other in pairs:
                mine.load_state_dict(other.state_dict())
        return self


def blocks(seed: int = 0) -> dict[str, nn.Module]:
    """The three blocks with the student's temporal hyper-parameters and shared weights."""
    config = StudentConfig()
    torch.manual_seed(seed)
    shape = dict(dim=config.dim, depth=config.depth, heads=config.heads, dim_head=config.dim // config.heads)
    performer = Performer(**shape, nb_features=config.nb_features, causal=False).eval()
    return {"performer": performer,
            "softmax": SoftmaxTransformer(**shape).load_performer(performer).eval(),
            "sdpa": SoftmaxTransformer(**shape, fused=True).load_performer(performer).eval()}


def estimated_bytes(kind: str, window: int) -> int:
    """Peak memory of one forward, roughly: the softmax block holds two (heads, W, W) float matrices
    (scores and their softmax); everything else is linear in W (the 4x feed-forward dominates)."""
    config = StudentConfig()
    linear = 4 * window * config.dim * 16
    return linear + (2 * 4 * config.heads * window ** 2 if kind == "softmax" else 0)


def available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info()[0]
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    """glibc: hand the heap's free pages back to the OS. Blocks under glibc's mmap threshold are
    recycled inside the heap, and reusing a page that is still resident would not show in the
    resident set; trimmed, every page a forward touches does."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):      # not glibc: small blocks may go unseen
        pass


def _resident_kib() -> tuple[int, int]:
    """(current, peak) resident set of this process in KiB."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def measure(kind: str, window: int, device: str, threads: int, min_repeats: int, budget_s: float) -> dict:
    """Time and peak memory of one forward of ``kind`` at ``window`` frames, in this process."""
    torch.set_num_threads(threads)
    block = blocks()[kind].to(device)
    x = torch.randn(1, window, StudentConfig().dim, device=device)
    cuda = device.startswith("cuda")

    def forward() -> float:
        start = time.perf_counter()
        block(x)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.inference_mode():
        block(x[:, :16])                                     # kernels, thread pools, allocator
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            forward()
            peak, method = torch.cuda.max_memory_allocated() - before, "cuda max_memory_allocated"
        else:
            _trim_heap()
            try:
                with open("/proc/self/clear_refs", "w") as clear:
                    clear.write("5")                         # peak resident set := current
                current, _ = _resident_kib()
                forward()
                peak, method = 1024 * (_resident_kib()[1] - current), "peak RSS growth (clear_refs)"
            except OSError:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                forward()
                peak = 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
                method = "ru_maxrss growth in a fresh process"
        times = [forward()]                                  # the memory run was the warm-up
        while len(times) < min_repeats or (sum(times) < budget_s and len(times) < 100):
            times.append(forward())
    return {"ms": round(1000 * sorted(times)[len(times) // 2], 3), "peak_mib": round(peak / MIB, 2),
            "repeats": len(times), "memory_method": method}


def run_child(kind: str, window: int, args) -> dict:
    """``measure`` in a fresh process, so no other run's memory or allocator state is in its peak."""
    spec = json.dumps({"kind": kind, "window": window, "device": args.device, "threads": args.threads,
                       "min_repeats": args.repeats, "budget_s": args.budget})
    env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "MKL_NUM_THREADS")}}
    done = subprocess.run([sys.executable, "-m", "bench.attention", "--child", spec], env=env, text=True,
                          capture_output=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode:
        return {"skipped": f"the run failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


@torch.inference_mode()
def agreement(window: int = 64) -> dict:
    """How far the blocks' outputs are apart at a small W, as a fraction of what attention and
    feed-forward add to the input: the fused block must equal softmax; FAVOR+ approximates it."""
    models, x = blocks(), torch.randn(1, window, StudentConfig().dim, generator=torch.Generator().manual_seed(1))
    out = {kind: model(x) for kind, model in models.items()}
    change = (out["softmax"] - x).norm()
    return {kind: float((out[kind] - out["softmax"]).norm() / change) for kind in ("performer", "sdpa")}


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[64, 512, 4096, 16384])
    parser.add_argument("--threads", type=int, default=int(_THREADS), help="CPU threads (default: all cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards at least, after the warm-up")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed forwards to aim for per run")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="skip a run whose projected time (warm-up and repeats) exceeds this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(spec["kind"], spec["window"], spec["device"], spec["threads"],
                                 spec["min_repeats"], spec["budget_s"])))
        return None

    gap = agreement()
    if gap["sdpa"] > 1e-4:
        raise SystemExit("the fused block differs from softmax attention: the columns would compare different work")
    results, previous, methods = {}, {}, set()
    for window in sorted(args.windows):
        row = {}
        for kind in KINDS:
            need, have = estimated_bytes(kind, window), available_bytes(args.device)
            projected = None
            if kind in previous:         # attention's cost grows with W^2 (softmax, sdpa) or W (FAVOR+)
                (w0, ms0), power = previous[kind], 1 if kind == "performer" else 2
                projected = ms0 / 1000 * (window / w0) ** power * (args.repeats + 2)
            if need > 0.8 * have:
                row[kind] = {"skipped": f"needs ~{need / MIB:.0f} MiB, {have / MIB:.0f} MiB available"}
            elif projected is not None and projected > args.max_seconds:
                row[kind] = {"skipped": f"projected {projected:.0f} s from W = {previous[kind][0]}, "
                                        f"over --max-seconds {args.max_seconds:g}"}
            else:
                row[kind] = run_child(kind, window, args)
                if "ms" in row[kind]:
                    previous[kind] = (window, row[kind]["ms"])
                    methods.add(row[kind].pop("memory_method"))
        performer, softmax = row["performer"], row["softmax"]
        both = "ms" in performer and "ms" in softmax
        row["speedup"] = round(softmax["ms"] / performer["ms"], 2) if both else None
        row["memory_fraction"] = (round(performer["peak_mib"] / softmax["peak_mib"], 4)
                                  if both and softmax["peak_mib"] > 0 else None)
        row["attention_matrix_mib"] = round(4 * StudentConfig().heads * window ** 2 / MIB, 2)
        results[str(window)] = row

    at_target = results.get(str(TARGET_WINDOW), {})
    measured = at_target.get("speedup") is not None and at_target.get("memory_fraction") is not None
    config = StudentConfig()
    result = {
        "bench": "attention",
        "device": args.device,
        "threads": args.threads,
        "block": {"dim": config.dim, "depth": config.depth, "heads": config.heads,
                  "dim_head": config.dim // config.heads, "nb_features": config.nb_features, "ff_mult": 4,
                  "batch": 1},
        "windows": results,
        "memory_method": " / ".join(sorted(methods)) or None,
        "favor_vs_softmax_relative_gap_w64": round(gap["performer"], 4),
        "target": f"at W = {TARGET_WINDOW}: speedup >= {TARGET_SPEEDUP:g} and memory_fraction <= {TARGET_FRACTION:g}",
        "target_met": (at_target["speedup"] >= TARGET_SPEEDUP and at_target["memory_fraction"] <= TARGET_FRACTION)
        if measured else None,
        **machine(gpu=args.device.startswith("cuda")),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
