"""HybrIK IK throughput: ours (batched over frames and over the joints of each tree level) against
the joint-by-joint reference in bench/reference_ik.py, measured in the same run.

Inputs are float32 poses of the built-in body within joint limits, targets with 2 cm noise,
inference mode (no autograd). Both paths are checked to agree before timing.

    ./dev.sh bench ik [--device cuda] [--threads N]       (or: python -m bench.ik)

Prints one JSON line: milliseconds per call at batch 1, 64 and 4096, and the speedup.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from bench.reference_ik import reference_inverse_kinematics
from ros2_radar_pose.body.hybrik_ik import inverse_kinematics, twist_from_rotations
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.limits import random_pose
from ros2_radar_pose.body.models import AnthropometricBody

TARGET_MS = {1: 1.0, 4096: 50.0}


def inputs(batch: int, device: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    rest = AnthropometricBody().rest_joints(torch.randn(batch, 4, generator=generator, dtype=torch.float64))
    rotations = random_pose(batch, generator)
    joints, _ = forward_kinematics(rotations, rest)
    noisy = joints + 0.02 * torch.randn(joints.shape, generator=generator, dtype=torch.float64)
    twist = twist_from_rotations(rotations, rest)
    return [x.to(device=device, dtype=torch.float32) for x in (noisy, twist, rest)]


def milliseconds(function, args, device: str, budget: float = 1.0) -> float:
    """Median over repeated calls (at least 5, about ``budget`` seconds)."""
    def once() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        function(*args)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start
    once()                                          # warm-up
    first = once()
    times = [first] + [once() for _ in range(max(4, int(budget / max(first, 1e-6))))]
    return 1000 * sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile(inverse_kinematics) at batch 1 (compiling takes ~1 min)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with torch.inference_mode():
        check = inputs(64, args.device, seed=1)
        ours = inverse_kinematics(*check).local_rotations
        reference = reference_inverse_kinematics(*check)[0]
        if (ours - reference).abs().max() > 1e-3:
            raise SystemExit("ours and the reference disagree: the benchmark would compare different work")
        for batch in (1, 64, 4096):
            data = inputs(batch, args.device)
            ours_ms = milliseconds(inverse_kinematics, data, args.device)
            reference_ms = milliseconds(reference_inverse_kinematics, data, args.device)
            results[str(batch)] = {"ours_ms": round(ours_ms, 3), "reference_ms": round(reference_ms, 3),
                                   "speedup": round(reference_ms / ours_ms, 2)}
        if args.compile:
            data = inputs(1, args.device)
            compiled = torch.compile(inverse_kinematics)
            start = time.perf_counter()
            compiled(*data)
            results["1"]["compile_s"] = round(time.perf_counter() - start, 1)
            results["1"]["compiled_ms"] = round(milliseconds(compiled, data, args.device), 3)
    targets = {f"batch_{b}_under_{ms:g}_ms": results[str(b)]["ours_ms"] < ms for b, ms in TARGET_MS.items()}
    print(json.dumps({"bench": "ik", "device": args.device, "threads": args.threads, "dtype": "float32",
                      "batch": results, "targets_met": targets if args.device == "cpu" else None,
                      "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
