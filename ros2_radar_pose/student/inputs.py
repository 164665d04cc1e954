"""Clouds of any size -> the fixed-size, masked point sets the student reads.

A frame keeps at most ``max_points`` points, the strongest by intensity (the TI demo reports at
most 64 per frame anyway), in their original order; the rest of the slots are padding with
mask False. Training and the streaming node both pack frames here, so both see the same input.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ros2_radar_pose.radar.points import FIELDS, INTENSITY

MAX_POINTS = 64


def pack_cloud(cloud: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """One cloud (N, 5) -> points (max_points, 5) float32 and mask (max_points,) bool. Points with
    a non-finite field are left out: a NaN must never reach the network."""
    cloud = np.asarray(cloud, dtype=np.float32).reshape(-1, len(FIELDS))
    cloud = cloud[np.isfinite(cloud).all(axis=1)]
    if len(cloud) > max_points:
        keep = np.sort(np.argpartition(-cloud[:, INTENSITY], max_points - 1)[:max_points])
        cloud = cloud[keep]
    points = np.zeros((max_points, len(FIELDS)), dtype=np.float32)
    points[:len(cloud)] = cloud
    mask = np.zeros(max_points, dtype=bool)
    mask[:len(cloud)] = True
    return points, mask


def pack_clouds(clouds: Sequence[np.ndarray], max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """T clouds -> points (T, max_points, 5) and mask (T, max_points)."""
    points = np.zeros((len(clouds), max_points, len(FIELDS)), dtype=np.float32)
    mask = np.zeros((len(clouds), max_points), dtype=bool)
    for t, cloud in enumerate(clouds):
        points[t], mask[t] = pack_cloud(cloud, max_points)
    return points, mask
