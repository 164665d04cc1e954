"""Synthetic recordings: people moving in front of a simulated radar, written as rosbag2 bags.

One session per subject: a random body (``random_subject``), a continuous random motion program
(``random_program``), posed by the body model, seen by the radar simulator, labelled by the
simulated camera teacher (data/teacher_noise.py). A bag holds the sessions back to back with the
topics a real recording holds (DESIGN.md): ``/radar/points`` (ti_mmwave_rospkg's layout, radar
frame), ``/radar_pose/teacher/skeleton`` and ``/radar_pose/ground_truth/skeleton`` (SMPL-24 joints
and global orientations in the radar frame) and ``/tf_static`` (the radar's mount in ``world``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ros2_radar_pose import topics
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.models import BodyModel, load_body_model
from ros2_radar_pose.body.rotations import matrix_to_quaternion
from ros2_radar_pose.data.bags import BagWriter, Transform
from ros2_radar_pose.data.motions import Motion
from ros2_radar_pose.data.programs import random_program
from ros2_radar_pose.data.subjects import random_subject
from ros2_radar_pose.data.teacher_noise import TeacherNoise, teacher_labels
from ros2_radar_pose.radar.simulator import RadarSimConfig, RadarSimulator, capsules_for

START_NS = 1_767_225_600 * 10**9   # 2026-01-01T00:00:00Z: bags need some epoch; a fixed one keeps them repeatable
SESSION_GAP_NS = 2 * 10**9         # between subjects


@dataclass
class SyntheticSession:
    """One subject's recording. Skeletons are SMPL-24 in the radar frame: positions (T, 24, 3),
    rotations (T, 24, 4) quaternions (x, y, z, w); ``clouds`` T arrays (N_t, 5) float32 (radar frame);
    ``cloud_labels`` what made each point (radar/simulator.py BODY, CLUTTER, GHOST, FALSE_ALARM)."""

    subject: int
    motion: Motion
    height: float
    stamps_ns: np.ndarray
    clouds: list[np.ndarray]
    cloud_labels: list[np.ndarray]
    truth_positions: np.ndarray
    truth_rotations: np.ndarray
    teacher_positions: np.ndarray
    teacher_rotations: np.ndarray
    teacher_labelled: np.ndarray

    def __len__(self) -> int:
        return len(self.stamps_ns)


def _in_radar_frame(joints: np.ndarray, rotations: torch.Tensor, config: RadarSimConfig):
    """World joints (T, N, 3) and global rotations (T, R, 3, 3) -> radar-frame positions and xyzw quaternions."""
    world_from_radar = config.mount_rotation()
    positions = (joints - np.asarray(config.mount_translation)) @ world_from_radar
    radar_rotations = torch.as_tensor(world_from_radar.T, dtype=rotations.dtype) @ rotations
    return positions.astype(np.float32), matrix_to_quaternion(radar_rotations).float().numpy()


def simulate_session(motion: Motion, body: BodyModel, rng: np.random.Generator, subject: int = 0,
                     radar: RadarSimConfig | None = None, teacher: TeacherNoise | None = None,
                     start_ns: int = START_NS, progress: Callable[[int], None] | None = None) -> SyntheticSession:
    """Pose ``motion`` with ``body``, simulate the radar and the teacher."""
    radar = radar or RadarSimConfig()
    with torch.no_grad():
        betas = torch.as_tensor(np.asarray(motion.betas), dtype=torch.float64)[None]
        pose = body(betas.expand(len(motion), -1), torch.as_tensor(motion.local_rotations, dtype=torch.float64),
                    torch.as_tensor(motion.translation, dtype=torch.float64))
        height = float(body.height(betas)[0])
    joints = pose.joints.numpy()                                              # (T, 29, 3) world
    frames = RadarSimulator(capsules_for(HYBRIK_29, height), radar).simulate(joints, motion.fps, rng, progress)
    positions, quats = _in_radar_frame(joints[:, :24], pose.global_rotations, radar)
    teacher_positions, teacher_quats, labelled = teacher_labels(positions, quats, motion.fps, rng,
                                                                teacher or TeacherNoise())
    stamps = start_ns + np.round(np.arange(len(motion)) * 1e9 / motion.fps).astype(np.int64)
    return SyntheticSession(subject, motion, height, stamps, frames.clouds, frames.labels, positions, quats,
                            teacher_positions, teacher_quats, labelled)


def generate_sessions(subjects: int, minutes: float, seed: int, fps: float = 20.0, body: BodyModel | None = None,
                      radar: RadarSimConfig | None = None, teacher: TeacherNoise | None = None,
                      progress: Callable[[int], None] | None = None) -> Iterator[SyntheticSession]:
    """``subjects`` sessions of ``minutes`` each, back to back in time; deterministic by ``seed``."""
    if subjects < 1 or not minutes > 0 or not fps > 0:
        raise ValueError("need at least one subject, and positive minutes and fps")
    body = body or load_body_model()
    start = START_NS
    for subject in range(subjects):
        rng = np.random.default_rng([seed, subject])
        betas = random_subject(rng, body)
        motion = random_program(minutes * 60.0, fps, int(rng.integers(2**31)), body, betas=betas)
        session = simulate_session(motion, body, rng, subject, radar, teacher, start, progress)
        start = int(session.stamps_ns[-1]) + SESSION_GAP_NS
        yield session


def mount_transform(radar: RadarSimConfig, frame_id: str = topics.RADAR_FRAME) -> Transform:
    """The radar's mount as a static transform world -> radar frame."""
    quat = Rotation.from_euler("xyz", radar.mount_rpy).as_quat()
    return Transform(topics.WORLD_FRAME, frame_id, np.asarray(radar.mount_translation, dtype=np.float64), quat)


def write_sessions(writer: BagWriter, sessions, radar: RadarSimConfig | None = None,
                   frame_id: str = topics.RADAR_FRAME) -> dict[str, int]:
    """Write sessions into an open bag; returns messages written per topic."""
    radar = radar or RadarSimConfig()
    counts = {topics.RADAR_POINTS: 0, topics.GROUND_TRUTH_SKELETON: 0, topics.TEACHER_SKELETON: 0, topics.TF_STATIC: 0}
    for session in sessions:
        if counts[topics.TF_STATIC] == 0:
            writer.write_static_transforms(int(session.stamps_ns[0]), [mount_transform(radar, frame_id)])
            counts[topics.TF_STATIC] += 1
        for t, stamp in enumerate(session.stamps_ns.tolist()):
            writer.write_cloud(topics.RADAR_POINTS, stamp, frame_id, session.clouds[t])
            writer.write_skeleton(topics.GROUND_TRUTH_SKELETON, stamp, frame_id, session.truth_positions[t],
                                  session.truth_rotations[t])
            counts[topics.RADAR_POINTS] += 1
            counts[topics.GROUND_TRUTH_SKELETON] += 1
            if session.teacher_labelled[t]:
                writer.write_skeleton(topics.TEACHER_SKELETON, stamp, frame_id, session.teacher_positions[t],
                                      session.teacher_rotations[t])
                counts[topics.TEACHER_SKELETON] += 1
    return counts


def simulate_bag(path: str | Path, subjects: int = 1, minutes: float = 1.0, seed: int = 0, fps: float = 20.0,
                 storage: str = "mcap", version: int = 9, body: BodyModel | None = None,
                 radar: RadarSimConfig | None = None, teacher: TeacherNoise | None = None,
                 overwrite: bool = False, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Generate and write a synthetic bag; returns messages written per topic."""
    sessions = generate_sessions(subjects, minutes, seed, fps, body, radar, teacher, progress)
    with BagWriter(path, storage=storage, version=version, overwrite=overwrite) as writer:
        return write_sessions(writer, sessions, radar)
