"""How physically plausible a skeleton sequence is, and how close to a reference.

All on SMPL-24 joints (T, 24, 3) in a z-up frame whose floor is z = 0 (physics/tracker.py
``FloorFrame`` maps the radar frame there), at a constant frame rate:

- **foot skating**: horizontal travel of the ball of a foot from one frame to the next while that
  foot is in contact in both (mm per frame, averaged over such steps). Contact comes from the
  caller (the ground truth's, so that every sequence is scored on the same frames) or, without
  one, from the sequence's own sole height (below ``CONTACT_HEIGHT``);
- **floor penetration**: depth of each foot's sole below the floor (the sole: ankle and ball, each
  less its height over the sole when the foot is flat, ``BodyShape.clearance``): mean and max
  over feet and frames (mm; a foot above the floor counts 0), and the share of frames with a foot
  more than 1 mm under;
- **jitter**: mean magnitude of the joints' second difference (mm per frame squared);
- **MPJPE** to the target and to the ground truth, where given (mm).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ros2_radar_pose.physics.contacts import sole_heights
from ros2_radar_pose.physics.humanoid import ANKLE, FOOT

CONTACT_HEIGHT = 0.03       # m, a sole lower than this touches the floor (when no contacts are given)
UNDER_FLOOR = 0.001         # m, deeper than this counts as a frame under the floor


@dataclass
class Plausibility:
    skating_mm: float
    penetration_mean_mm: float
    penetration_max_mm: float
    penetration_share: float
    jitter_mm: float
    mpjpe_target_mm: float | None = None
    mpjpe_truth_mm: float | None = None

    def to_json_dict(self) -> dict:
        return {k: (None if v is None else round(float(v), 3)) for k, v in asdict(self).items()}


def sole_depth(positions: np.ndarray, clearance: np.ndarray) -> np.ndarray:
    """(T, 2) height of each foot's sole over the floor (negative: under it), from ``positions``
    (T, 24, 3) and ``clearance`` (2, 3) as ``BodyShape.clearance`` gives it (ankle, ball, toe)."""
    feet = np.stack([positions[:, list(ANKLE)], positions[:, list(FOOT)]], axis=2)       # (T, 2, 2, 3)
    return sole_heights(feet, clearance[:, :2])


def foot_travel(positions: np.ndarray) -> np.ndarray:
    """(T-1, 2) horizontal travel (m) of the ball of each foot from each frame of ``positions``
    (T, 24, 3) to the next."""
    return np.linalg.norm(np.diff(positions[:, list(FOOT), :2], axis=0), axis=-1)


def mpjpe_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-joint position error (mm) of (T, J, 3) sequences, over frames where both are finite."""
    error = np.linalg.norm(a - b, axis=-1)
    return float(np.nanmean(error) * 1000)


def plausibility(positions: np.ndarray, clearance: np.ndarray, contacts: np.ndarray | None = None,
                 target: np.ndarray | None = None, truth: np.ndarray | None = None) -> Plausibility:
    """Score ``positions`` (T, 24, 3); ``contacts`` (T, 2) bool; ``target``, ``truth`` (T, 24, 3)."""
    if positions.ndim != 3 or positions.shape[1:] != (24, 3) or len(positions) < 3:
        raise ValueError(f"need at least 3 frames of SMPL-24 joints (T, 24, 3), got {positions.shape}")
    sole = sole_depth(positions, clearance)
    if contacts is None:
        contacts = sole < CONTACT_HEIGHT
    if contacts.shape != (len(positions), 2):
        raise ValueError(f"contacts must be (T, 2) = {(len(positions), 2)}, got {contacts.shape}")
    travel = foot_travel(positions)
    held = contacts[1:] & contacts[:-1]
    skating = float(travel[held].mean() * 1000) if held.any() else 0.0
    depth = np.clip(-sole, 0.0, None)
    acceleration = np.linalg.norm(positions[2:] - 2 * positions[1:-1] + positions[:-2], axis=-1)
    return Plausibility(
        skating_mm=skating,
        penetration_mean_mm=float(depth.mean() * 1000),
        penetration_max_mm=float(depth.max() * 1000),
        penetration_share=float((depth > UNDER_FLOOR).any(axis=1).mean()),
        jitter_mm=float(acceleration.mean() * 1000),
        mpjpe_target_mm=None if target is None else mpjpe_mm(positions, target),
        mpjpe_truth_mm=None if truth is None else mpjpe_mm(positions, truth),
    )
