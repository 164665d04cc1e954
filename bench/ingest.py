"""Radar ingestion throughput: PointCloud2 -> the person's (N, 5) cloud, frames per second.

Ours (vectorised decode + field mapping + preprocessing) against the per-point reference in
bench/reference.py (struct-unpack decoding, as sensor_msgs_py's read_points did, and the same
preprocessing one point at a time), measured in the same run on one CPU core, with clouds in
ti_mmwave_rospkg's layout (point_step 32) from a scene of one walking person, walls and ghosts.
Decoding alone (PointCloud2 -> (N, 5) cloud, no preprocessing) is reported beside the whole
pipeline. Both paths must give the same clouds; the run checks it before timing.

    ./dev.sh bench ingest [--frames N]        (or: python -m bench.ingest)

Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from bench.reference import ReferencePreprocessor, read_cloud
from ros2_radar_pose.radar.fields import TI_MMWAVE
from ros2_radar_pose.radar.preprocess import CloudPreprocessor, PreprocessConfig
from ros2_radar_pose.ros.pointcloud2 import CloudDecoder, array_to_pointcloud2
from ros2_radar_pose.ros.time import from_seconds

TARGET_SPEEDUP, TARGET_FPS_64 = 20.0, 5000.0


def scene(points_per_frame: int, frames: int, rate: float = 20.0, seed: int = 0):
    """PointCloud2 messages: a walking person (70% of points), wall spots and ghosts."""
    rng = np.random.default_rng(seed)
    spots = np.c_[np.full(16, 5.1), np.linspace(-2.3, 2.3, 16), rng.uniform(-0.5, 1.0, 16)]
    messages = []
    for frame in range(frames):
        t = frame / rate
        centre = np.array([2.5 + 0.8 * np.sin(0.4 * t), 0.6 * np.cos(0.4 * t)])
        n_person = int(points_per_frame * 0.7)
        n_ghost = max(1, points_per_frame // 20)
        n_wall = points_per_frame - n_person - n_ghost
        person = np.c_[rng.normal(centre, 0.15, (n_person, 2)), rng.uniform(-1, 0.8, n_person)]
        wall = spots[rng.integers(0, len(spots), n_wall)] + rng.normal(0, 0.01, (n_wall, 3))
        ghost = rng.uniform([0.5, -4, -1], [7, 4, 1.5], (n_ghost, 3))
        points = np.zeros(points_per_frame, dtype=TI_MMWAVE)
        points["x"], points["y"], points["z"] = np.concatenate([person, wall, ghost]).T
        points["velocity"][:n_person] = np.round(rng.normal(0, 0.5, n_person) / 0.13) * 0.13
        points["intensity"] = rng.uniform(5, 30, points_per_frame)
        msg = array_to_pointcloud2(points)
        msg.header.stamp = from_seconds(100.0 + t)
        messages.append(msg)
    return messages


def frames_per_second(run, messages, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over all messages (a fresh state each pass)."""
    best = float("inf")
    for _ in range(repeats):
        step = run()
        start = time.perf_counter()
        for msg in messages:
            step(msg)
        best = min(best, time.perf_counter() - start)
    return len(messages) / best


def ours(config):
    def make():
        decode, preprocessor = CloudDecoder(), CloudPreprocessor(config)
        stamp = iter(range(10**9))
        return lambda msg: preprocessor.process(decode(msg), 100.0 + next(stamp) / 20.0).cloud
    return make


def reference(config):
    def make():
        preprocessor = ReferencePreprocessor(config)
        stamp = iter(range(10**9))
        return lambda msg: preprocessor.process(read_cloud(msg), 100.0 + next(stamp) / 20.0)[0]
    return make


def check_same_output(config, messages) -> None:
    fast, slow = ours(config)(), reference(config)()
    for msg in messages:
        a, b = fast(msg), np.array(slow(msg), dtype=np.float32).reshape(-1, 5)
        if not np.array_equal(a, b):
            raise SystemExit("ours and the reference disagree: the benchmark would compare different work")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per pass for our path (default 2000)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})   # one core
    config = PreprocessConfig()
    results = {}
    for n in (64, 512):
        messages = scene(n, args.frames)
        few = messages[: max(50, args.frames // (10 if n == 64 else 40))]
        check_same_output(config, few)
        result = {
            "ours_fps": frames_per_second(ours(config), messages),
            "reference_fps": frames_per_second(reference(config), few, repeats=1),
            "decode_ours_fps": frames_per_second(CloudDecoder, messages),
            "decode_reference_fps": frames_per_second(lambda: read_cloud, few, repeats=1),
        }
        result["speedup"] = result["ours_fps"] / result["reference_fps"]
        result["decode_speedup"] = result["decode_ours_fps"] / result["decode_reference_fps"]
        results[str(n)] = {k: round(v, 1) for k, v in result.items()}
    targets = {f"{stage}_speedup_at_{n}_ge_20": results[n][f"{prefix}speedup"] >= TARGET_SPEEDUP
               for stage, prefix in (("decode", "decode_"), ("pipeline", "")) for n in ("64", "512")}
    targets["pipeline_fps_at_64_ge_5000"] = results["64"]["ours_fps"] >= TARGET_FPS_64
    # Cost per frame must not grow faster than the points: time per point at 8x the points.
    scaling = {}
    for n in (4096, 32768):
        messages = scene(n, max(20, 200 * 4096 // n))
        scaling[str(n)] = round(1e6 / frames_per_second(ours(config), messages) / n, 4)
    targets["linear_per_frame_cost"] = scaling["32768"] <= 1.5 * scaling["4096"]
    print(json.dumps({"bench": "ingest", "points_per_frame": results, "pipeline_us_per_point": scaling,
                      "targets_met": targets,
                      "cpu": platform.processor() or platform.machine(), "cores_used": 1}))


if __name__ == "__main__":
    main()
