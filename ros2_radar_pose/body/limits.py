"""Joint limits: the range of each SMPL joint's local rotation, for sampling plausible poses
and for physics.

Ranges are intrinsic X-Y-Z Euler angles (radians) in SMPL's frame (x: the body's left, y: up,
z: forward), rounded from clinical ranges of motion (American Academy of Orthopaedic Surgeons,
"Joint Motion: Method of Measuring and Recording", 1965). Signs: hip flexion is -x (the thigh
swings forward), knee flexion +x; the left elbow flexes about -y, the right about +y; left-side
abduction is +z, right-side -z.
"""
from __future__ import annotations

import math

import torch

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.body.rotations import euler_to_matrix

_ANY = (-math.pi, math.pi)
# name: ((x_min, x_max), (y_min, y_max), (z_min, z_max)) for the left side; the right mirrors y and z.
_LEFT_LIMITS = {
    "pelvis": (_ANY, _ANY, _ANY),
    "left_hip": ((-2.0, 0.5), (-0.7, 0.7), (-0.5, 0.8)),
    "spine1": ((-0.5, 0.6), (-0.5, 0.5), (-0.4, 0.4)),
    "left_knee": ((0.0, 2.4), (-0.15, 0.15), (-0.1, 0.1)),
    "spine2": ((-0.3, 0.4), (-0.4, 0.4), (-0.3, 0.3)),
    "left_ankle": ((-0.5, 0.8), (-0.4, 0.4), (-0.4, 0.4)),
    "spine3": ((-0.3, 0.3), (-0.3, 0.3), (-0.2, 0.2)),
    "left_foot": ((-0.6, 0.4), (-0.1, 0.1), (-0.1, 0.1)),
    "neck": ((-0.6, 0.7), (-0.8, 0.8), (-0.5, 0.5)),
    "left_collar": ((-0.2, 0.2), (-0.4, 0.3), (-0.3, 0.4)),
    "head": ((-0.4, 0.5), (-0.5, 0.5), (-0.3, 0.3)),
    "left_shoulder": ((-1.5, 1.5), (-1.6, 0.8), (-1.5, 1.2)),
    "left_elbow": ((-1.2, 1.2), (-2.5, 0.0), (-0.1, 0.1)),
    "left_wrist": ((-0.6, 0.6), (-0.5, 0.5), (-1.0, 1.0)),
    "left_hand": ((-0.3, 0.3), (-0.2, 0.2), (-0.4, 0.4)),
}


def _limits(name: str):
    if not name.startswith("right_"):
        return _LEFT_LIMITS[name]
    (x, (y0, y1), (z0, z1)) = _LEFT_LIMITS[name.replace("right_", "left_")]
    return x, (-y1, -y0), (-z1, -z0)


# (24, 3, 2): low and high Euler angle of each joint and axis.
EULER_LIMITS = torch.tensor([_limits(name) for name in SMPL_24.names], dtype=torch.float64)


def random_pose(batch: int, generator: torch.Generator | None = None, dtype=torch.float64,
                device: str | torch.device = "cpu", scale: float = 1.0) -> torch.Tensor:
    """Local rotations (batch, 24, 3, 3) drawn uniformly inside the Euler limits, each range
    shrunk by ``scale`` around its middle."""
    low, high = EULER_LIMITS[..., 0], EULER_LIMITS[..., 1]
    middle, half = (low + high) / 2, (high - low) / 2 * scale
    u = torch.rand(batch, 24, 3, generator=generator, dtype=torch.float64)
    angles = middle + (2 * u - 1) * half
    return euler_to_matrix(angles.to(device=device, dtype=dtype), "XYZ")
