"""Teacher throughput: HybrIK-R34 images per second against its own ResNet-34 backbone, and BlazePose.

HybrIK runs with random weights (time depends on shapes only) on skimage's astronaut photograph
(512 x 512) repeated to the batch, the whole frame as the person box. Per device and batch:

- ``network``: ``HybrIKNet`` forward on ready (B, 3, 256, 256) crops;
- ``estimate_no_ik``: the teacher's path up to the IK (``run_network``: crop on the device, the
  forward, the roots into the real camera), from uint8 images in host memory;
- ``backbone``, the reference measured in the same run: the bare ResNet-34 (``net.preact``) on the
  same crops; ``network_time_over_backbone`` says what the deconvolution head, the 29 x 64^3
  integral regression and the heads cost on top of it.

CPU in float32 with every core (``threads``); CUDA, when there is one, under bf16 autocast. Time:
median of ``--repeats`` calls after one warm-up call; on the CPU at batches above 8 (a ResNet-34
batch of 64 takes seconds), ``--large-cpu-repeats`` calls and no warm-up (batch 1 has loaded the
kernels). BlazePose (``ros2_radar_pose.teacher.blazepose``, MediaPipe on the CPU, one image per
call, its IK included) on the same photograph, reported null with the reason where it cannot run.

    ./dev.sh bench teacher [--batches 1 64] [--repeats 10] [--device all|cpu|cuda]

Prints one JSON line.
"""
from __future__ import annotations

import os

_THREADS = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, _THREADS)   # all cores unless told, before numpy and torch load

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.machine import machine  # noqa: E402
from ros2_radar_pose.teacher.camera import PinholeCamera  # noqa: E402
from ros2_radar_pose.teacher.crop import PersonBox, crop_images  # noqa: E402
from ros2_radar_pose.teacher.hybrik import HybrIKNet, run_network  # noqa: E402

LARGE_CPU_BATCH = 8


def photograph() -> tuple[np.ndarray, PinholeCamera]:
    """skimage's astronaut (512, 512, 3) uint8 RGB and a camera of 60 degrees horizontal view."""
    from skimage import data

    image = np.ascontiguousarray(data.astronaut())
    return image, PinholeCamera.from_field_of_view(image.shape[1], image.shape[0], np.radians(60.0))


def median_seconds(function, repeats: int, warmup: bool, cuda: bool) -> float:
    def once() -> float:
        start = time.perf_counter()
        function()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    if warmup:
        once()
    return float(np.median([once() for _ in range(max(repeats, 1))]))


def hybrik_rates(net: HybrIKNet, device: str, batch: int, repeats: int, warmup: bool) -> dict:
    """Images per second of the network, the estimate path without IK, and the backbone."""
    image, camera = photograph()
    images = np.repeat(image[None], batch, axis=0)
    boxes = [PersonBox.full_frame(camera)] * batch
    crops = crop_images(torch.from_numpy(images).to(device), boxes)
    cuda = device.startswith("cuda")
    autocast = torch.bfloat16 if cuda else None

    def under_autocast(function):
        def run():
            with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=autocast or torch.float32,
                                                        enabled=autocast is not None):
                function()
        return run

    seconds = {
        "network": median_seconds(under_autocast(lambda: net(crops)), repeats, warmup, cuda),
        "estimate_no_ik": median_seconds(lambda: run_network(net, images, camera, [None] * batch, autocast),
                                         repeats, False, cuda),
        "backbone": median_seconds(under_autocast(lambda: net.preact(crops)), repeats, warmup, cuda),
    }
    row = {f"{name}_images_per_s": round(batch / s, 2) for name, s in seconds.items()}
    row["network_time_over_backbone"] = round(seconds["network"] / seconds["backbone"], 3)
    row["estimate_time_over_network"] = round(seconds["estimate_no_ik"] / seconds["network"], 3)
    row["repeats"] = max(repeats, 1)
    return row


def blazepose_rate(repeats: int) -> dict:
    """BlazePose images per second on the photograph (CPU), or null with the reason."""
    try:
        from ros2_radar_pose.teacher.blazepose import BlazePoseBackend
    except ImportError as error:
        return {"images_per_s": None, "reason": f"ros2_radar_pose.teacher.blazepose does not import: {error}"}
    image, camera = photograph()
    failures = (ImportError, TypeError, AttributeError, ValueError, RuntimeError)   # an API not as expected
    try:
        backend = BlazePoseBackend()
    except failures as error:
        return {"images_per_s": None, "reason": f"BlazePoseBackend() failed: {type(error).__name__}: {error}"}
    try:
        found = backend.estimate(image[None], camera, [None], [None])[0] is not None   # also the warm-up
        seconds = median_seconds(lambda: backend.estimate(image[None], camera, [None], [None]), repeats, False, False)
    except failures as error:
        return {"images_per_s": None, "reason": f"BlazePoseBackend.estimate failed: {type(error).__name__}: {error}"}
    finally:
        getattr(backend, "close", lambda: None)()
    return {"images_per_s": round(1.0 / seconds, 2), "found_person": found, "device": "cpu",
            "repeats": max(repeats, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement")
    parser.add_argument("--large-cpu-repeats", type=int, default=2,
                        help=f"timed calls on the CPU at batches above {LARGE_CPU_BATCH}")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                        help="all: the CPU, and CUDA when there is one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    devices = ["cpu"] if args.device in ("all", "cpu") else []
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append("cuda")
    if args.device == "cuda" and not devices:
        raise SystemExit("--device cuda: torch sees no CUDA device")

    torch.manual_seed(args.seed)
    results = {}
    for device in devices:
        net = HybrIKNet().to(device).eval()
        rows = {}
        for batch in sorted(args.batches):
            large = device == "cpu" and batch > LARGE_CPU_BATCH
            rows[str(batch)] = hybrik_rates(net, device, batch, args.large_cpu_repeats if large else args.repeats,
                                            warmup=not large)
        results[device] = {"autocast": "bfloat16" if device == "cuda" else None, "batches": rows}
        del net
    result = {
        "bench": "teacher",
        "model": "HybrIK ResNet-34 (random weights), 256 x 256 crops",
        "hybrik": results,
        "blazepose": blazepose_rate(args.repeats),
        "image": "skimage.data.astronaut() 512 x 512, whole-frame box",
        **machine(gpu="cuda" in results),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
