"""A simulated camera teacher: ground-truth skeletons with the errors a monocular 3D pose network makes.

The synthetic world has no camera images, so its teacher labels are the ground truth corrupted the
way a camera teacher (HybrIK on RGB) gets things wrong. The model, every part a ``TeacherNoise``
parameter, with defaults from published HybrIK errors on 3DPW (MPJPE ~75 mm after root alignment,
root depth off by about a tenth of a metre at 2-4 m):

- **Root error**: the whole skeleton is displaced, mostly along the viewing ray (monocular depth
  is the weak direction): a slowly varying offset, ``root_depth_std`` along the ray from the
  camera, ``root_lateral_std`` across it, correlated over ``root_correlation_s``.
- **Joint error**: each joint wanders independently around its true place by ``joint_std``, scaled
  by how far it is from the trunk (``JOINT_ERROR_SCALE``: twice as much at wrists and ankles),
  correlated over ``joint_correlation_s`` (a network's errors persist across similar frames).
- **Rotation error**: each joint's global orientation tilted by ``rotation_std_deg`` about a random
  axis, with the same correlation as the joint error.
- **Dropouts**: runs of frames without a label (the person left the image, was occluded, the
  detector missed), starting with probability ``dropout_rate`` per frame, ``dropout_mean_s`` long.
- **Left/right swaps**: runs of frames where the left and right limbs trade places (a classic
  failure on people seen from behind), with probability ``swap_rate`` per frame, ``swap_mean_s`` long.

The camera is taken to sit at the radar (its viewing ray is the radar's line of sight); skeletons
are in the radar frame. Time-correlated noise is a first-order autoregressive process with the
given stationary standard deviation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body.joint_sets import SMPL_24

# joint error relative to the trunk's, by distance along the kinematic chain from the trunk
JOINT_ERROR_SCALE = np.array([
    {"pelvis": 1.0, "spine1": 1.0, "spine2": 1.0, "spine3": 1.0, "neck": 1.0, "left_hip": 1.0, "right_hip": 1.0,
     "left_collar": 1.0, "right_collar": 1.0, "head": 1.2, "left_shoulder": 1.2, "right_shoulder": 1.2,
     "left_knee": 1.5, "right_knee": 1.5, "left_elbow": 1.5, "right_elbow": 1.5}.get(name, 2.0)
    for name in SMPL_24.names])
LEFT_RIGHT = np.array(SMPL_24.mirrored)


@dataclass(frozen=True)
class TeacherNoise:
    root_depth_std: float = 0.08         # m, along the viewing ray
    root_lateral_std: float = 0.02       # m, across it
    root_correlation_s: float = 1.0
    joint_std: float = 0.025             # m, trunk joints; limbs more (JOINT_ERROR_SCALE)
    joint_correlation_s: float = 0.15
    rotation_std_deg: float = 5.0
    dropout_rate: float = 0.005          # per frame
    dropout_mean_s: float = 0.5
    swap_rate: float = 0.002             # per frame
    swap_mean_s: float = 0.3

    def __post_init__(self):
        values = [getattr(self, name) for name in self.__dataclass_fields__]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("teacher noise parameters must be finite and >= 0")
        if self.dropout_rate > 1 or self.swap_rate > 1:
            raise ValueError("dropout_rate and swap_rate are probabilities per frame")


NO_NOISE = TeacherNoise(root_depth_std=0, root_lateral_std=0, joint_std=0, rotation_std_deg=0, dropout_rate=0,
                        swap_rate=0)


def _correlated(rng: np.random.Generator, shape: tuple[int, ...], std: float, correlation_s: float,
                fps: float) -> np.ndarray:
    """(T, ...) first-order autoregressive noise along axis 0 with stationary std ``std``."""
    white = rng.standard_normal(shape)
    if correlation_s <= 0:
        return std * white
    phi = math.exp(-1.0 / (correlation_s * fps))
    # x[0] drawn from the stationary distribution, then x[t] = phi x[t-1] + sqrt(1 - phi^2) w[t]
    rest, _ = lfilter([math.sqrt(1 - phi * phi)], [1, -phi], white[1:], axis=0, zi=phi * white[:1])
    return std * np.concatenate([white[:1], rest])


def _runs(rng: np.random.Generator, frames: int, rate: float, mean_s: float, fps: float) -> np.ndarray:
    """(T,) bool: runs starting with probability ``rate`` per frame, geometric lengths of mean ``mean_s``."""
    mask = np.zeros(frames, dtype=bool)
    if rate <= 0:
        return mask
    mean_frames = max(1.0, mean_s * fps)
    for start in np.flatnonzero(rng.random(frames) < rate):
        mask[start:start + rng.geometric(1.0 / mean_frames)] = True
    return mask


def teacher_labels(joints: np.ndarray, rotations: np.ndarray, fps: float, rng: np.random.Generator,
                   noise: TeacherNoise = TeacherNoise()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy teacher labels from ground truth in the radar frame.

    ``joints`` (T, 24, 3), ``rotations`` (T, 24, 4) global orientations as quaternions (x, y, z, w).
    Returns positions (T, 24, 3) float32, rotations (T, 24, 4) float32 and ``labelled`` (T,) bool
    (False: the teacher gave nothing for that frame).
    """
    joints = np.asarray(joints, dtype=np.float64)
    frames = len(joints)
    swapped = _runs(rng, frames, noise.swap_rate, noise.swap_mean_s, fps)
    positions = joints.copy()
    positions[swapped] = joints[swapped][:, LEFT_RIGHT]
    quats = np.asarray(rotations, dtype=np.float64).copy()
    quats[swapped] = quats[swapped][:, LEFT_RIGHT]

    root = joints[:, 0]
    ray = root / np.maximum(np.linalg.norm(root, axis=1, keepdims=True), 1e-9)               # (T, 3)
    across = np.cross(ray, [0.0, 0.0, 1.0])
    across /= np.maximum(np.linalg.norm(across, axis=1, keepdims=True), 1e-9)
    up = np.cross(across, ray)
    offset = _correlated(rng, (frames, 3), 1.0, noise.root_correlation_s, fps)
    root_error = (offset[:, :1] * noise.root_depth_std * ray + offset[:, 1:2] * noise.root_lateral_std * across
                  + offset[:, 2:3] * noise.root_lateral_std * up)
    joint_error = _correlated(rng, (frames, 24, 3), noise.joint_std, noise.joint_correlation_s, fps)
    positions += root_error[:, None] + joint_error * JOINT_ERROR_SCALE[None, :, None]

    if noise.rotation_std_deg > 0:
        tilt = _correlated(rng, (frames, 24, 3), math.radians(noise.rotation_std_deg) / math.sqrt(3),
                           noise.joint_correlation_s, fps)
        quats = (Rotation.from_rotvec(tilt.reshape(-1, 3)) * Rotation.from_quat(quats.reshape(-1, 4))).as_quat()
        quats = quats.reshape(frames, 24, 4)
    labelled = ~_runs(rng, frames, noise.dropout_rate, noise.dropout_mean_s, fps)
    return positions.astype(np.float32), quats.astype(np.float32), labelled
