"""Radar cloud preprocessing: from a raw (N, 5) cloud to the points of the tracked person.

Stages, each vectorised and linear in the number of points:

1. drop points with a non-finite column;
2. optional rigid transform into a target frame (the radar's mount);
3. region of interest: range, azimuth and height limits;
4. static-clutter suppression: a hashed voxel map remembers how often each voxel held points
   that were *not* the person (an exponential average with time constant
   ``clutter_time_constant``); slow points in voxels occupied most of the time are walls and
   furniture, not people;
5. clustering in the ground plane on a grid of ``cluster_eps`` cells (cells that touch, in
   8-neighbourhood, join one cluster): people are vertical, so head and feet join;
6. person selection with continuity: the largest cluster near the tracked position; with no
   track, the largest cluster with at least ``person_min_moving`` moving points (a person
   enters the scene moving, furniture never moves, so a wall is never mistaken for a person
   and ends up in the clutter map; a person who stands still once tracked stays tracked); the
   output keeps every point within ``person_radius``
   (horizontally) of the chosen cluster's centre, so sparse limb points that did not join the
   cluster stay with the body. When no cluster is near, the track coasts for ``track_timeout``.

Coordinates are ROS axes (x forward, y left, z up) in the sensor frame, or in the target frame
when a transform is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ros2_radar_pose.radar.points import INTENSITY, VELOCITY, XYZ, as_cloud, empty_cloud

# Largest clustering grid side, in cells: bounds memory for unusual ROI/eps settings.
_MAX_GRID_SIDE = 1024
VOXEL_HASH_PRIMES = np.array([73856093, 19349663, 83492791], dtype=np.int64)
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass
class PreprocessConfig:
    """Parameters of every stage; the ROS parameters of radar_ingest carry the same names."""

    range_min: float = 0.2            # m, horizontal-plus-vertical distance from the sensor
    range_max: float = 8.0            # m
    azimuth_max_deg: float = 75.0     # |atan2(y, x)| limit, degrees
    z_min: float = -2.5               # m, height limits in the output frame
    z_max: float = 2.5
    min_intensity: float = 0.0        # dB; weaker points are dropped
    clutter_enabled: bool = True
    clutter_voxel: float = 0.2        # m
    clutter_max_speed: float = 0.05   # m/s; faster points are never clutter
    clutter_time_constant: float = 10.0  # s
    clutter_threshold: float = 0.5    # share of recent frames a voxel was occupied
    clutter_table_bits: int = 16      # hashed voxel table of 2**bits entries
    cluster_eps: float = 0.4          # m, grid cell of the ground-plane clustering
    cluster_min_points: int = 3
    person_radius: float = 0.8        # m, horizontal radius kept around the person
    person_gate: float = 1.0          # m, furthest a tracked person moves between frames
    person_min_moving: int = 2        # moving points (|v| >= clutter_max_speed) to start a track
    track_timeout: float = 2.0        # s

    def __post_init__(self):
        checks = [
            (0 <= self.range_min < self.range_max, "range_min must be >= 0 and below range_max"),
            (0 < self.azimuth_max_deg <= 180, "azimuth_max_deg must be in (0, 180]"),
            (self.z_min < self.z_max, "z_min must be below z_max"),
            (self.clutter_voxel > 0, "clutter_voxel must be positive"),
            (self.clutter_time_constant > 0, "clutter_time_constant must be positive"),
            (0 < self.clutter_threshold <= 1, "clutter_threshold must be in (0, 1]"),
            (8 <= self.clutter_table_bits <= 24, "clutter_table_bits must be in [8, 24]"),
            (self.cluster_eps > 0, "cluster_eps must be positive"),
            (self.cluster_min_points >= 1, "cluster_min_points must be at least 1"),
            (self.person_radius > 0 and self.person_gate > 0, "person_radius and person_gate must be positive"),
            (self.person_min_moving >= 0, "person_min_moving must be >= 0"),
            (self.track_timeout >= 0, "track_timeout must be >= 0"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("preprocessing parameters: " + "; ".join(problems))


@dataclass
class RigidTransform:
    """x_target = rotation @ x_source + translation."""

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        """Transform (N, 3) points."""
        return xyz @ np.asarray(self.rotation, dtype=np.float64).T + self.translation


@dataclass
class PreprocessResult:
    """One frame's output and what each stage kept, for diagnostics."""

    cloud: np.ndarray                 # (M, 5) float32, the person's points
    centre: np.ndarray | None         # (2,) float64 horizontal centre of the person, or None
    n_input: int = 0
    n_finite: int = 0
    n_roi: int = 0
    n_clutter: int = 0
    n_clusters: int = 0
    tracking: bool = False            # a cluster was matched to the track this frame


def roi_mask(xyz: np.ndarray, intensity: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Points inside the region of interest, (N,) bool. ``xyz`` (N, 3), ``intensity`` (N,)."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    distance = np.sqrt(x * x + y * y + z * z)
    azimuth_limit = math.radians(config.azimuth_max_deg)
    return ((distance >= config.range_min) & (distance <= config.range_max)
            & (np.abs(np.arctan2(y, x)) <= azimuth_limit)
            & (z >= config.z_min) & (z <= config.z_max)
            & (intensity >= config.min_intensity))


def voxel_hash(xyz: np.ndarray, voxel: float, table_bits: int) -> np.ndarray:
    """Hash each point's voxel into a table of 2**table_bits entries, (N,) int64."""
    cells = np.floor(xyz / voxel).astype(np.int64)
    mixed = cells * VOXEL_HASH_PRIMES
    return (mixed[:, 0] ^ mixed[:, 1] ^ mixed[:, 2]) & ((1 << table_bits) - 1)


class StaticClutterMap:
    """Exponential average, per hashed voxel, of how often the voxel held non-person points.

    Decay is applied lazily (each entry remembers when it was last updated), so a frame costs
    time proportional to its points, never to the table size.
    """

    def __init__(self, config: PreprocessConfig):
        self.config = config
        size = 1 << config.clutter_table_bits
        self.occupancy = np.zeros(size, dtype=np.float64)
        self.updated_at = np.zeros(size, dtype=np.float64)

    def occupancy_at(self, keys: np.ndarray, stamp: float) -> np.ndarray:
        """Current occupancy (0..1) of voxels ``keys`` (N,) at time ``stamp``."""
        age = np.maximum(stamp - self.updated_at[keys], 0.0)
        return self.occupancy[keys] * np.exp(-age / self.config.clutter_time_constant)

    def update(self, keys: np.ndarray, stamp: float, frame_dt: float) -> None:
        """Record one frame in which voxels ``keys`` held non-person points.

        A voxel listed several times gets the same value each time, so duplicates need no removal.
        """
        gain = 1.0 - math.exp(-frame_dt / self.config.clutter_time_constant)
        self.occupancy[keys] = self.occupancy_at(keys, stamp) + gain
        self.updated_at[keys] = stamp


def ground_clusters(xy: np.ndarray, eps: float) -> tuple[np.ndarray, int]:
    """Cluster (N, 2) points on a grid of ``eps`` cells joined in 8-neighbourhood.

    Returns (labels (N,) int in 0..n-1, n). The grid spans only the points' bounding box.
    """
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64), 0
    low = xy.min(axis=0)
    eps = max(eps, float((xy.max(axis=0) - low).max()) / (_MAX_GRID_SIDE - 1))
    cells = np.floor((xy - low) / eps).astype(np.intp)
    grid = np.zeros(tuple(cells.max(axis=0) + 1), dtype=bool)
    grid[cells[:, 0], cells[:, 1]] = True
    labelled, count = ndimage.label(grid, structure=_EIGHT_NEIGHBOURS)
    return labelled[cells[:, 0], cells[:, 1]].astype(np.int64) - 1, count


class CloudPreprocessor:
    """Stateful per-sensor preprocessing (clutter map and person track persist across frames)."""

    def __init__(self, config: PreprocessConfig | None = None, transform: RigidTransform | None = None):
        self.config = config or PreprocessConfig()
        self.transform = transform
        self.reset()

    def reset(self) -> None:
        """Forget the clutter map and the track (e.g. when time jumps backwards)."""
        self.clutter = StaticClutterMap(self.config)
        self.track: np.ndarray | None = None      # (2,) horizontal position
        self.track_seen_at = -math.inf
        self.last_stamp: float | None = None

    def process(self, cloud: np.ndarray, stamp: float) -> PreprocessResult:
        """Preprocess one frame. ``cloud`` (N, 5) in the sensor frame; ``stamp`` in seconds."""
        cfg = self.config
        cloud = as_cloud(cloud)
        if self.last_stamp is not None and stamp < self.last_stamp:
            self.reset()
        frame_dt = 0.0 if self.last_stamp is None else min(stamp - self.last_stamp, 1.0)
        self.last_stamp = stamp
        result = PreprocessResult(cloud=empty_cloud(), centre=None, n_input=len(cloud))

        if not np.isfinite(cloud).all():  # rare: row-wise filtering only then
            cloud = cloud[np.isfinite(cloud).all(axis=1)]
        result.n_finite = len(cloud)
        xyz = cloud[:, XYZ].astype(np.float64)
        if self.transform is not None:
            xyz = self.transform.apply(xyz)
            cloud = cloud.copy()
            cloud[:, XYZ] = xyz
        inside = roi_mask(xyz, cloud[:, INTENSITY], cfg)
        cloud, xyz = cloud[inside], xyz[inside]
        result.n_roi = len(cloud)

        keys = voxel_hash(xyz, cfg.clutter_voxel, cfg.clutter_table_bits)
        if cfg.clutter_enabled:
            static = ((np.abs(cloud[:, VELOCITY]) < cfg.clutter_max_speed)
                      & (self.clutter.occupancy_at(keys, stamp) >= cfg.clutter_threshold))
        else:
            static = np.zeros(len(cloud), dtype=bool)
        result.n_clutter = int(static.sum())
        moving = ~static
        labels, result.n_clusters = ground_clusters(xyz[moving, :2], cfg.cluster_eps)

        centre = self._select_person(xyz[moving, :2], np.abs(cloud[moving, VELOCITY]), labels,
                                     result.n_clusters, stamp)
        result.tracking = centre is not None
        if centre is None and self.track is not None and stamp - self.track_seen_at <= cfg.track_timeout:
            centre = self.track
        person = np.zeros(len(cloud), dtype=bool)
        if centre is not None:
            offset = xyz[:, :2] - centre
            person = moving & (np.einsum("ij,ij->i", offset, offset) <= cfg.person_radius ** 2)
            result.cloud = np.ascontiguousarray(cloud[person])
            result.centre = np.array(centre, dtype=np.float64)
            if result.tracking and person.any():
                self.track = xyz[person, :2].mean(axis=0)
                result.centre = self.track
        if cfg.clutter_enabled and frame_dt > 0:
            self.clutter.update(keys[~person], stamp, frame_dt)
        return result

    def _select_person(self, xy: np.ndarray, speed: np.ndarray, labels: np.ndarray, count: int,
                       stamp: float) -> np.ndarray | None:
        """Centre (2,) of the cluster taken for the person this frame, or None.

        ``xy`` (N, 2) and ``speed`` (N,) of the non-clutter points, ``labels`` (N,) their clusters.
        """
        cfg = self.config
        if count == 0:
            return None
        sizes = np.bincount(labels, minlength=count)
        centre_x = np.bincount(labels, xy[:, 0], count) / sizes   # every label has a point
        centre_y = np.bincount(labels, xy[:, 1], count) / sizes
        candidates = sizes >= cfg.cluster_min_points
        tracked = self.track is not None and stamp - self.track_seen_at <= cfg.track_timeout
        if tracked:
            distance = np.hypot(centre_x - self.track[0], centre_y - self.track[1])
            candidates &= distance <= cfg.person_gate
        else:
            distance = np.hypot(centre_x, centre_y)
            moving = np.bincount(labels, speed >= cfg.clutter_max_speed, count)
            candidates &= moving >= cfg.person_min_moving
        if not candidates.any():
            return None
        # Most points wins; ties go to the cluster nearest the track (or the sensor).
        order = np.lexsort((distance, -sizes))
        best = order[candidates[order]][0]
        self.track_seen_at = stamp
        return np.array([centre_x[best], centre_y[best]])
