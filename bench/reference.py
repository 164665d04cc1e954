"""Straightforward per-point implementations, kept as the baseline for bench/ingest.py and as an
oracle for the tests: they must give the same answers as the vectorised code, by plain loops.

- ``read_points``: struct-unpack per point, the way sensor_msgs_py.point_cloud2.read_points
  decoded clouds before it used NumPy.
- ``ReferencePreprocessor``: the stages of ros2_radar_pose.radar.preprocess, one point at a time.
"""
from __future__ import annotations

import math
import struct
from collections import deque

from ros2_radar_pose.radar.fields import DEFAULT_ALIASES
from ros2_radar_pose.radar.preprocess import VOXEL_HASH_PRIMES

_STRUCT = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d"}
_HASH_PRIMES = tuple(int(p) for p in VOXEL_HASH_PRIMES)
_VELOCITY_NAMES, _INTENSITY_NAMES = DEFAULT_ALIASES["velocity"], DEFAULT_ALIASES["intensity"]


def read_points(msg):
    """Yield one tuple of field values per point (first element of counted fields)."""
    fields = sorted(msg.fields, key=lambda f: f.offset)
    fmt = ">" if msg.is_bigendian else "<"
    offset = 0
    for field in fields:
        if offset < field.offset:
            fmt += "x" * (field.offset - offset)
            offset = field.offset
        fmt += _STRUCT[field.datatype] * max(field.count, 1)
        offset += struct.calcsize("<" + _STRUCT[field.datatype]) * max(field.count, 1)
    unpack_from = struct.Struct(fmt).unpack_from
    data = bytes(msg.data)
    for row in range(msg.height):
        for column in range(msg.width):
            yield unpack_from(data, row * msg.row_step + column * msg.point_step)


def read_cloud(msg) -> list[list[float]]:
    """Decode a PointCloud2 into rows [x, y, z, velocity, intensity] (0.0 for missing fields):
    one struct.unpack_from of just those fields per point, as read_points(field_names=...) did."""
    by_name = {field.name: field for field in msg.fields}
    chosen = ["x", "y", "z", next((n for n in _VELOCITY_NAMES if n in by_name), None),
              next((n for n in _INTENSITY_NAMES if n in by_name), None)]
    present = sorted((by_name[name] for name in chosen if name), key=lambda f: f.offset)
    fmt, offset = ">" if msg.is_bigendian else "<", 0
    for field in present:
        fmt += "x" * (field.offset - offset) + _STRUCT[field.datatype]
        offset = field.offset + struct.calcsize("<" + _STRUCT[field.datatype])
    position = {field.name: index for index, field in enumerate(present)}
    order = [position.get(name) for name in chosen]
    unpack_from = struct.Struct(fmt).unpack_from
    data = bytes(msg.data)
    cloud = []
    for row in range(msg.height):
        for column in range(msg.width):
            values = unpack_from(data, row * msg.row_step + column * msg.point_step)
            cloud.append([0.0 if index is None else values[index] for index in order])
    return cloud


class ReferencePreprocessor:
    """ros2_radar_pose.radar.preprocess.CloudPreprocessor, one point at a time."""

    def __init__(self, config):
        self.config = config
        self.occupancy: dict[int, float] = {}
        self.updated_at: dict[int, float] = {}
        self.track = None
        self.track_seen_at = -math.inf
        self.last_stamp = None

    def process(self, cloud, stamp: float):
        """``cloud``: rows [x, y, z, velocity, intensity]. Returns (person rows, centre or None)."""
        cfg = self.config
        if self.last_stamp is not None and stamp < self.last_stamp:
            self.__init__(cfg)
        frame_dt = 0.0 if self.last_stamp is None else min(stamp - self.last_stamp, 1.0)
        self.last_stamp = stamp
        tau = cfg.clutter_time_constant
        kept = []
        for point in cloud:
            x, y, z, velocity, intensity = (float(v) for v in point)
            if not all(math.isfinite(v) for v in (x, y, z, velocity, intensity)):
                continue
            distance = math.sqrt(x * x + y * y + z * z)
            if not (cfg.range_min <= distance <= cfg.range_max
                    and abs(math.atan2(y, x)) <= math.radians(cfg.azimuth_max_deg)
                    and cfg.z_min <= z <= cfg.z_max and intensity >= cfg.min_intensity):
                continue
            cells = [math.floor(c / cfg.clutter_voxel) for c in (x, y, z)]
            key = ((cells[0] * _HASH_PRIMES[0]) ^ (cells[1] * _HASH_PRIMES[1])
                   ^ (cells[2] * _HASH_PRIMES[2])) & ((1 << cfg.clutter_table_bits) - 1)
            occupancy = self.occupancy.get(key, 0.0) * math.exp(
                -max(stamp - self.updated_at.get(key, 0.0), 0.0) / tau)
            static = cfg.clutter_enabled and abs(velocity) < cfg.clutter_max_speed \
                and occupancy >= cfg.clutter_threshold
            kept.append((point, x, y, key, static))

        moving = [k for k in kept if not k[4]]
        centre, tracking = self._select(moving, stamp)
        if centre is None and self.track is not None and stamp - self.track_seen_at <= cfg.track_timeout:
            centre = self.track
        person_keys, person = set(), []
        if centre is not None:
            for index, (point, x, y, _key, static) in enumerate(kept):
                if not static and (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= cfg.person_radius ** 2:
                    person.append(point)
                    person_keys.add(index)
            if tracking and person:
                xs = [kept[i][1] for i in sorted(person_keys)]
                ys = [kept[i][2] for i in sorted(person_keys)]
                self.track = (sum(xs) / len(xs), sum(ys) / len(ys))
                centre = self.track
        if cfg.clutter_enabled and frame_dt > 0:
            gain = 1.0 - math.exp(-frame_dt / tau)
            hit = {kept[i][3] for i in range(len(kept)) if i not in person_keys}
            for key in hit:
                self.occupancy[key] = self.occupancy.get(key, 0.0) * math.exp(
                    -max(stamp - self.updated_at.get(key, 0.0), 0.0) / tau) + gain
                self.updated_at[key] = stamp
        return person, centre

    def _select(self, moving, stamp):
        """Grid clustering by breadth-first search over touching cells, then the person rule."""
        cfg = self.config
        if not moving:
            return None, False
        low_x = min(m[1] for m in moving)
        low_y = min(m[2] for m in moving)
        eps = max(cfg.cluster_eps, max(max(m[1] for m in moving) - low_x,
                                       max(m[2] for m in moving) - low_y) / 1023)
        cells: dict[tuple[int, int], list[int]] = {}
        for index, m in enumerate(moving):
            cells.setdefault((math.floor((m[1] - low_x) / eps), math.floor((m[2] - low_y) / eps)),
                             []).append(index)
        seen, clusters = set(), []
        for start in cells:
            if start in seen:
                continue
            seen.add(start)
            queue, members = deque([start]), []
            while queue:
                cx, cy = queue.popleft()
                members += cells[(cx, cy)]
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        neighbour = (cx + dx, cy + dy)
                        if neighbour in cells and neighbour not in seen:
                            seen.add(neighbour)
                            queue.append(neighbour)
            size = len(members)
            in_motion = sum(1 for i in members if abs(float(moving[i][0][3])) >= cfg.clutter_max_speed)
            clusters.append((size, sum(moving[i][1] for i in members) / size,
                             sum(moving[i][2] for i in members) / size, in_motion))
        tracked = self.track is not None and stamp - self.track_seen_at <= cfg.track_timeout
        best = None
        for size, cx, cy, in_motion in clusters:
            if size < cfg.cluster_min_points:
                continue
            if tracked:
                distance = math.hypot(cx - self.track[0], cy - self.track[1])
                if distance > cfg.person_gate:
                    continue
            else:
                distance = math.hypot(cx, cy)
                if in_motion < cfg.person_min_moving:
                    continue
            if best is None or (size, -distance) > (best[0], -best[1]):
                best = (size, distance, (cx, cy))
        if best is None:
            return None, False
        self.track_seen_at = stamp
        return best[2], True
