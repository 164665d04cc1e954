"""Streaming student latency on one CPU thread: StreamingStudent.push per frame, network and IK.

Clouds come from the synthetic world (a random motion program seen by the radar simulator, as
``bench simulate`` makes them), one push per frame at the student's window W. The student is
untrained (seeded weights, input statistics from the clouds): latency depends on shapes only.

The reference, measured in the same run, is the plain way to stream, which push did before it kept
encoded frames: shift a window of packed clouds, run the model's forward on all W frames, keep the
newest, then IK and the body's forward for the global rotations. Both are checked to agree first.
``eager_push_ms`` is push with its two steps run as Python modules rather than traced graphs
(``StreamingStudent(traced=False)``), the same arithmetic; the reference's breakdown times its
network (packing, encoder, Performer, heads) and its rotations (IK, forward kinematics, quaternions).

    ./dev.sh bench student_latency [--frames 1000] [--window 32]

Prints one JSON line. Target: push p50 at most 5 ms at W = 32 on one thread.
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
from ros2_radar_pose.body.hybrik_ik import inverse_kinematics  # noqa: E402
from ros2_radar_pose.body.models import AnthropometricBody, BodyModel  # noqa: E402
from ros2_radar_pose.body.rotations import geodesic_distance, matrix_to_quaternion, quaternion_to_matrix  # noqa: E402
from ros2_radar_pose.data.programs import random_program  # noqa: E402
from ros2_radar_pose.data.subjects import random_subject  # noqa: E402
from ros2_radar_pose.data.synthetic import simulate_session  # noqa: E402
from ros2_radar_pose.student.inputs import pack_cloud  # noqa: E402
from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig, StudentPose  # noqa: E402
from ros2_radar_pose.student.streaming import StreamingStudent  # noqa: E402

TARGET_MS = 5.0
FPS = 20.0


class ReferenceStreamer:
    """Whole-window streaming: every push re-runs the model on the W packed frames."""

    def __init__(self, model: RadarPoseStudent, body: BodyModel):
        self.model, self.body, config = model, body, model.config
        self.points = torch.zeros(1, config.window, config.max_points, 5)
        self.mask = torch.zeros(1, config.window, config.max_points, dtype=torch.bool)

    def network(self, cloud: np.ndarray) -> StudentPose:
        """The newest frame's prediction, every tensor (1, 1, ...)."""
        points, mask = pack_cloud(cloud, self.model.config.max_points)
        self.points[0, :-1] = self.points[0, 1:].clone()
        self.mask[0, :-1] = self.mask[0, 1:].clone()
        self.points[0, -1], self.mask[0, -1] = torch.from_numpy(points), torch.from_numpy(mask)
        pose = self.model(self.points, self.mask)
        return StudentPose(*(None if t is None else t[:, -1:] for t in
                             (pose.root, pose.joints, pose.twist, pose.betas, pose.joints29)))

    def rotations(self, pose: StudentPose) -> np.ndarray:
        betas = pose.betas[0].double()
        rest = self.body.rest_joints(betas)
        local = inverse_kinematics(pose.joints29[0].double(), pose.twist[0].double(), rest).local_rotations
        return matrix_to_quaternion(self.body(betas, local).global_rotations[0]).numpy()

    def push(self, cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pose = self.network(cloud)
        return pose.joints[0, 0].double().numpy(), self.rotations(pose)


def percentiles(seconds: list[float]) -> dict:
    ms = 1000 * np.asarray(seconds)
    return {"p50": round(float(np.median(ms)), 3), "p90": round(float(np.percentile(ms, 90)), 3),
            "p99": round(float(np.percentile(ms, 99)), 3), "mean": round(float(ms.mean()), 3)}


def timed(function, inputs, warmup: int) -> list[float]:
    """Seconds per call of ``function`` on each input in order, the first ``warmup`` calls dropped."""
    times = []
    for item in inputs:
        start = time.perf_counter()
        function(item)
        times.append(time.perf_counter() - start)
    return times[warmup:]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1000, help="timed pushes (after a warm-up of W)")
    parser.add_argument("--window", type=int, default=StudentConfig.window)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    body = AnthropometricBody()
    config = StudentConfig(window=args.window)
    rng = np.random.default_rng(args.seed)
    frames = args.frames + config.window
    motion = random_program(frames / FPS, FPS, args.seed, body, betas=random_subject(rng, body))
    clouds = simulate_session(motion, body, rng).clouds[:frames]
    points = np.concatenate(clouds)
    torch.manual_seed(args.seed)
    model = RadarPoseStudent(config).eval()
    model.set_statistics(torch.from_numpy(points.mean(0)), torch.from_numpy(points.std(0) + 1e-3),
                         torch.from_numpy(points[:, :3].mean(0)))

    with torch.inference_mode():
        check, reference = StreamingStudent(model, body), ReferenceStreamer(model, body)
        for cloud in clouds[:config.window + 8]:                 # before and after the window fills
            ours, (positions, quaternions) = check.push(cloud), reference.push(cloud)
            angle = geodesic_distance(quaternion_to_matrix(torch.from_numpy(ours.rotations)),
                                      quaternion_to_matrix(torch.from_numpy(quaternions)))
            if np.abs(ours.positions - positions).max() > 1e-4 or angle.max() > 1e-3:
                raise SystemExit("push and the reference disagree: the benchmark would compare different work")

        push_s = timed(StreamingStudent(model, body).push, clouds, config.window)
        eager_s = timed(StreamingStudent(model, body, traced=False).push, clouds, config.window)
        reference = ReferenceStreamer(model, body)
        poses = [reference.network(cloud) for cloud in clouds]  # the newest frame's prediction, per frame
        reference = ReferenceStreamer(model, body)
        reference_s = timed(reference.push, clouds, config.window)
        reference = ReferenceStreamer(model, body)
        reference_network_s = timed(reference.network, clouds, config.window)
        reference_rotations_s = timed(reference.rotations, poses, config.window)

    push, reference_push = percentiles(push_s), percentiles(reference_s)
    counts = np.array([len(c) for c in clouds])
    result = {
        "bench": "student_latency",
        "window": config.window,
        "frames": len(push_s),
        "push_ms": push,
        "eager_push_ms": percentiles(eager_s),
        "reference_push_ms": reference_push,
        "reference_breakdown_ms_p50": {"network": percentiles(reference_network_s)["p50"],
                                       "rotations": percentiles(reference_rotations_s)["p50"]},
        "speedup_p50": round(reference_push["p50"] / push["p50"], 2),
        "speedup_over_eager_p50": round(percentiles(eager_s)["p50"] / push["p50"], 2),
        "target": f"push p50 <= {TARGET_MS:g} ms at W = 32 on one thread",
        "target_ms": TARGET_MS,
        "target_met": push["p50"] <= TARGET_MS if config.window == 32 else None,
        "points_per_frame": {"p5": float(np.percentile(counts, 5)), "median": float(np.median(counts)),
                             "p95": float(np.percentile(counts, 95))},
        **machine(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
