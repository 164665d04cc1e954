"""Physics refinement before vs after, on synthetic motions with ground truth, one CPU thread.

Motions from the motion library (walk towards the radar, squat, front and side lunge, sit down and
stand up; the average built-in body, 20 Hz). The input, the reference scored in the same run with
the same contacts (the ground truth's; physics/metrics.py), is one of:

- **a student's output** (default: the student the package ships, models/student_sim.pt; another
  with ``--checkpoint``): the radar simulator's clouds of the motion, through radar_ingest's
  preprocessing and the streaming student, as the nodes run them, from the first frame the student
  node would publish (the first with the person's points);
- **student-like noise** (``--noise``): the ground truth with data/teacher_noise.py's model without
  dropouts or left/right swaps (a root offset mostly along the radar's line of sight, 8 cm,
  correlated over 1 s; joint errors of 2.5 cm on the trunk and up to 5 cm at the ends of the limbs,
  correlated over 0.15 s; 5 degrees of rotation error) plus 1 cm of white jitter per joint: what
  the physics does for a student better than the shipped one.
Each motion is run with ``--seeds`` noise draws; the summary averages ratios and differences over
every (motion, draw) and gives the worst one too.

    ./dev.sh bench physics [--physics-hz 200] [--seeds 3] [--motions walk,squat,...] [--checkpoint CKPT | --noise]

Prints one JSON line. Targets: foot skating -80 % or better, max penetration <= 5 mm, jitter
-50 % or better, MPJPE to ground truth at most +5 mm, >= 100 frames/s on one core.
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"     # one core, before numpy and torch load their thread pools

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from ros2_radar_pose.body.models import AnthropometricBody  # noqa: E402
from ros2_radar_pose.data.motions import Placement, make_motion  # noqa: E402
from ros2_radar_pose.data.teacher_noise import TeacherNoise, teacher_labels  # noqa: E402
from ros2_radar_pose.physics.humanoid import BodyShape  # noqa: E402
from ros2_radar_pose.physics.metrics import foot_travel, plausibility  # noqa: E402
from ros2_radar_pose.physics.tracker import FloorFrame, PhysicsTracker, TrackerConfig  # noqa: E402
from ros2_radar_pose.resources import SHIPPED_STUDENT, share_file  # noqa: E402

MOTIONS = ("walk", "squat", "front_lunge", "side_lunge", "sit")
FPS = 20.0
WHITE_JITTER = 0.01              # m per joint and axis
STUDENT_LIKE = TeacherNoise(dropout_rate=0.0, swap_rate=0.0)
TARGETS = {"skating_ratio": 0.2, "penetration_max_mm": 5.0, "jitter_ratio": 0.5, "mpjpe_increase_mm": 5.0,
           "frames_per_s": 100.0}


def bench_motion(name: str, body):
    return make_motion(name, body, fps=FPS, seed=1, start=Placement.facing_sensor(4.5 if name == "walk" else 3.0, 0.0))


def noisy_sequence(name: str, body, floor: FloorFrame, rng: np.random.Generator):
    """Ground truth (T, 24, 3) in the floor frame, contacts (T, 2), betas, and the noisy estimate in
    the radar frame: positions (T, 24, 3) and global rotations (T, 24, 3, 3)."""
    motion = bench_motion(name, body)
    with torch.no_grad():
        betas = torch.as_tensor(motion.betas, dtype=torch.float64)[None].expand(len(motion), -1)
        pose = body(betas, torch.as_tensor(motion.local_rotations, dtype=torch.float64),
                    torch.as_tensor(motion.translation, dtype=torch.float64))
    truth, rotations = pose.joints[:, :24].numpy(), pose.global_rotations.numpy()
    radar_positions, radar_rotations = floor.from_floor(truth, rotations)
    quaternions = Rotation.from_matrix(radar_rotations.reshape(-1, 3, 3)).as_quat().reshape(len(truth), 24, 4)
    positions, noisy_quaternions, _ = teacher_labels(radar_positions, quaternions, FPS, rng, STUDENT_LIKE)
    positions = positions.astype(np.float64) + rng.normal(0.0, WHITE_JITTER, positions.shape)
    noisy_rotations = Rotation.from_quat(noisy_quaternions.reshape(-1, 4)).as_matrix().reshape(len(truth), 24, 3, 3)
    return truth, motion.contacts, motion.betas, positions, noisy_rotations


def student_sequence(name: str, body, floor: FloorFrame, rng: np.random.Generator, checkpoint: str):
    """As ``noisy_sequence``, the estimate being the student's on the simulated radar's clouds."""
    from ros2_radar_pose.data.synthetic import simulate_session
    from ros2_radar_pose.radar.preprocess import CloudPreprocessor
    from ros2_radar_pose.radar.simulator import RadarSimConfig
    from ros2_radar_pose.student.checkpoint import load_student
    from ros2_radar_pose.student.streaming import StreamingStudent

    motion = bench_motion(name, body)
    radar = RadarSimConfig(mount_translation=floor.translation, mount_rpy=floor.rpy)
    session = simulate_session(motion, body, rng, radar=radar)
    student, preprocessor = StreamingStudent(load_student(checkpoint), body), CloudPreprocessor()
    poses, seen = [], []
    for cloud, stamp in zip(session.clouds, session.stamps_ns):
        poses.append(student.push(preprocessor.process(cloud, stamp * 1e-9).cloud))
        seen.append(student.window_has_points)
    # The node publishes nothing until the person's first points: score from there.
    first = seen.index(True)
    if not all(seen[first:]):
        raise RuntimeError(f"{name}: the person was lost for a whole window; the bench expects them in view")
    poses = poses[first:]
    positions = np.stack([pose.positions for pose in poses]).astype(np.float64)
    rotations = Rotation.from_quat(np.concatenate([pose.rotations for pose in poses])).as_matrix()
    truth = floor.to_floor(session.truth_positions[first:].astype(np.float64), np.eye(3))[0]
    return truth, motion.contacts[first:], motion.betas, positions, rotations.reshape(len(poses), 24, 3, 3)


def stance_foot_agreement(estimate: np.ndarray, contacts: np.ndarray) -> float | None:
    """Share of the truth's single-support frames in which the slower ball of foot of ``estimate``
    (T, 24, 3) is the truth's stance foot (``contacts`` (T, 2)): 1 where the estimate shows the gait,
    0.5 (chance) where it does not, and then no refinement can tell which foot to keep still. None
    without single support."""
    single = contacts[1:].sum(axis=1) == 1
    if not single.any():
        return None
    travel = foot_travel(estimate)
    return float(((travel[:, 0] < travel[:, 1]) == contacts[1:, 0])[single].mean())


def run(motions: tuple[str, ...], config: TrackerConfig, seeds: range, checkpoint: str | None = None) -> dict:
    body, floor = AnthropometricBody(), FloorFrame()
    results, before_all, after_all, rates = {}, [], [], []
    for name, seed in ((name, seed) for name in motions for seed in seeds):
        rng = np.random.default_rng([seed, MOTIONS.index(name) if name in MOTIONS else 99])
        if checkpoint:
            truth, contacts, betas, positions, rotations = student_sequence(name, body, floor, rng, checkpoint)
        else:
            truth, contacts, betas, positions, rotations = noisy_sequence(name, body, floor, rng)
        shape = BodyShape.of(body, betas)
        refined = np.zeros_like(positions)
        with PhysicsTracker(shape, config, floor) as tracker:
            started = time.perf_counter()
            for t in range(len(positions)):
                refined[t] = tracker.step(positions[t], rotations[t], t / FPS).positions
            seconds = time.perf_counter() - started
        estimate = floor.to_floor(positions, rotations)[0]
        refined = floor.to_floor(refined, rotations)[0]
        before = plausibility(estimate, shape.clearance, contacts, truth=truth)
        after = plausibility(refined, shape.clearance, contacts, target=estimate, truth=truth)
        before_all.append(before)
        after_all.append(after)
        rates.append(len(positions) / seconds)
        agreement = stance_foot_agreement(estimate, contacts)
        results[f"{name}/{seed}"] = {"frames": len(positions), "before": before.to_json_dict(),
                                     "stance_foot_agreement": None if agreement is None else round(agreement, 3),
                                     "after": after.to_json_dict(), "frames_per_s": round(rates[-1], 1)}

    def mean_ratio(key: str) -> float:
        return statistics.mean(getattr(a, key) / max(getattr(b, key), 1e-9) for b, a in zip(before_all, after_all))

    summary = {
        "skating_ratio": round(mean_ratio("skating_mm"), 3),
        "skating_ratio_worst": round(max(a.skating_mm / max(b.skating_mm, 1e-9)
                                         for b, a in zip(before_all, after_all)), 3),
        "penetration_max_mm": round(max(a.penetration_max_mm for a in after_all), 2),
        "jitter_ratio": round(mean_ratio("jitter_mm"), 3),
        "mpjpe_increase_mm": round(statistics.mean(a.mpjpe_truth_mm - b.mpjpe_truth_mm
                                                   for b, a in zip(before_all, after_all)), 2),
        "mpjpe_increase_worst_mm": round(max(a.mpjpe_truth_mm - b.mpjpe_truth_mm
                                             for b, a in zip(before_all, after_all)), 2),
        "frames_per_s": round(statistics.mean(rates), 1),
        "frames_per_s_slowest": round(min(rates), 1),
    }
    met = {
        "skating": summary["skating_ratio"] <= TARGETS["skating_ratio"],
        "penetration": summary["penetration_max_mm"] <= TARGETS["penetration_max_mm"],
        "jitter": summary["jitter_ratio"] <= TARGETS["jitter_ratio"],
        "mpjpe": summary["mpjpe_increase_mm"] <= TARGETS["mpjpe_increase_mm"],
        "speed": summary["frames_per_s"] >= TARGETS["frames_per_s"],
    }
    return {"motions": results, "summary": summary, "targets": TARGETS, "targets_met": met}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--physics-hz", type=float, default=TrackerConfig.physics_hz)
    parser.add_argument("--seeds", type=int, default=3, help="noise draws per motion (seeds 0 .. N-1)")
    parser.add_argument("--motions", default=",".join(MOTIONS), help="comma-separated motion names")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--checkpoint", help="a student checkpoint (SMPL-24 with rotations) whose output on simulated "
                                             "clouds physics refines (default: the one the package ships)")
    inputs.add_argument("--noise", action="store_true", help="refine the ground truth with student-like noise instead")
    args = parser.parse_args(argv)
    if not args.noise and not args.checkpoint:
        args.checkpoint = str(share_file(SHIPPED_STUDENT))
    torch.set_num_threads(1)
    config = dataclasses.replace(TrackerConfig(), physics_hz=args.physics_hz)
    report = {"benchmark": "physics",
              "input": f"student {args.checkpoint} on simulated clouds" if args.checkpoint
              else "ground truth + student-like noise (--noise)",
              "noise": None if args.checkpoint else {**dataclasses.asdict(STUDENT_LIKE),
                                                     "white_jitter_m": WHITE_JITTER},
              "machine": platform.machine(), "threads": 1, "seeds": args.seeds, "fps": FPS,
              "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "contacts"},
              "contacts": dataclasses.asdict(config.contacts)}
    report.update(run(tuple(m for m in args.motions.split(",") if m), config, range(args.seeds), args.checkpoint))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
