"""Synthetic-world throughput on one core: how many times faster than real time a session is made.

A session is what ``radar-pose simulate`` makes per subject: a random motion program, posed by the
body model, seen by the radar simulator and labelled by the simulated teacher (no bag writing).
The reference, measured in the same run, is the same radar simulation driven one frame per call,
as a node simulating live would do, so the batching's gain shows beside the target.

    ./dev.sh bench simulate [--seconds 60] [--fps 20]

Prints one JSON line. Target: at least 100x real time at 20 Hz on one core.
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"     # one core, before numpy and torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.machine import machine  # noqa: E402
from ros2_radar_pose.body.joint_sets import HYBRIK_29  # noqa: E402
from ros2_radar_pose.body.models import AnthropometricBody  # noqa: E402
from ros2_radar_pose.data.programs import random_program  # noqa: E402
from ros2_radar_pose.data.subjects import random_subject  # noqa: E402
from ros2_radar_pose.data.synthetic import simulate_session  # noqa: E402
from ros2_radar_pose.radar.simulator import RadarSimulator, capsules_for  # noqa: E402

TARGET_REALTIME = 100.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the simulated session")
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    body = AnthropometricBody()
    rng = np.random.default_rng(args.seed)
    betas = random_subject(rng, body)

    start = time.perf_counter()
    motion = random_program(args.seconds, args.fps, args.seed, body, betas=betas)
    motion_s = time.perf_counter() - start
    start = time.perf_counter()
    session = simulate_session(motion, body, rng)
    session_s = time.perf_counter() - start
    total_s = motion_s + session_s

    # reference: the radar alone, one frame per call, as a live simulation would run it
    joints = motion.joints(body)
    simulator = RadarSimulator(capsules_for(HYBRIK_29, session.height))
    velocities = np.gradient(joints, 1.0 / args.fps, axis=0)
    frames = min(len(joints), 200)
    start = time.perf_counter()
    for t in range(frames):
        simulator.simulate(joints[t:t + 1], args.fps, t, velocities=velocities[t:t + 1])
    per_frame_call_ms = 1000 * (time.perf_counter() - start) / frames
    start = time.perf_counter()
    simulator.simulate(joints, args.fps, 0)
    batched_ms = 1000 * (time.perf_counter() - start) / len(joints)

    seconds = len(motion) / args.fps
    points = np.array([len(c) for c in session.clouds])
    result = {
        "bench": "simulate",
        "fps": args.fps,
        "simulated_seconds": seconds,
        "realtime_factor": round(seconds / total_s, 1),
        "target_realtime_factor": TARGET_REALTIME,
        "met": seconds / total_s >= TARGET_REALTIME,
        "ms_per_frame": {"motion": round(1000 * motion_s / len(motion), 4),
                         "pose_radar_teacher": round(1000 * session_s / len(motion), 4),
                         "radar_batched": round(batched_ms, 4),
                         "radar_one_frame_per_call_reference": round(per_frame_call_ms, 4)},
        "batching_speedup": round(per_frame_call_ms / batched_ms, 2),
        "points_per_frame": {"p5": float(np.percentile(points, 5)), "median": float(np.median(points)),
                             "p95": float(np.percentile(points, 95))},
        **machine(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
