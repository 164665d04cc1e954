"""The radar point layout every stage shares: float32 columns x, y, z, velocity, intensity.

A cloud is a C-contiguous ``(N, 5)`` float32 array. Its bytes are exactly a PointCloud2 with
fields x, y, z, velocity, intensity (float32 at offsets 0, 4, 8, 12, 16; point_step 20), the
layout published on ``/radar_pose/points``. Units: metres, metres per second (radial velocity,
positive away from the sensor), intensity in dB (SNR for TI radars).
"""
from __future__ import annotations

import numpy as np

FIELDS: tuple[str, ...] = ("x", "y", "z", "velocity", "intensity")
X, Y, Z, VELOCITY, INTENSITY = range(len(FIELDS))
XYZ = slice(X, Z + 1)

# The structured view of one row, for converting to and from field-based layouts.
POINT_DTYPE = np.dtype([(name, "<f4") for name in FIELDS])


def empty_cloud() -> np.ndarray:
    """A cloud of no points, shape (0, 5)."""
    return np.zeros((0, len(FIELDS)), dtype=np.float32)


def as_cloud(points: np.ndarray) -> np.ndarray:
    """Validate and return ``points`` as a C-contiguous (N, 5) float32 cloud (copies only if needed)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != len(FIELDS):
        raise ValueError(f"a cloud has shape (N, {len(FIELDS)}) for {FIELDS}, got {points.shape}")
    return np.ascontiguousarray(points, dtype=np.float32)


def to_structured(cloud: np.ndarray) -> np.ndarray:
    """View a (N, 5) float32 cloud as a structured (N,) array with POINT_DTYPE (no copy)."""
    return as_cloud(cloud).view(POINT_DTYPE).reshape(-1)
