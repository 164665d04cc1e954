"""The pinhole camera and its pose relative to the radar.

Camera coordinates are the optical frame (REP-103 ``*_optical_frame``): x right, y down, z forward,
metres. Pixels are (u, v) with (0, 0) the centre of the top-left pixel, as in CameraInfo's K.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class PinholeCamera:
    """A rectified camera: focal lengths and principal point in pixels, image size in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(values)) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"a camera needs finite intrinsics and positive focal lengths, got "
                             f"fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"a camera needs a positive image size, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> PinholeCamera:
        """From a 3x3 intrinsic matrix K (CameraInfo.k, row-major, 9 values or (3, 3))."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    @classmethod
    def from_field_of_view(cls, width: int, height: int, horizontal_fov: float) -> PinholeCamera:
        """A centred camera with square pixels and a horizontal field of view in radians."""
        f = 0.5 * width / np.tan(0.5 * horizontal_fov)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera points (..., 3) -> pixels (..., 2); NaN for points not in front of the camera."""
        points = np.asarray(points, dtype=np.float64)
        z = points[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * points[..., 0] / z + self.cx, self.fy * points[..., 1] / z + self.cy], -1)
        uv[~(z > 1e-6)] = np.nan
        return uv

    def backproject(self, pixels: np.ndarray, depth: np.ndarray | float) -> np.ndarray:
        """Pixels (..., 2) at depths (...) along the optical axis -> camera points (..., 3)."""
        pixels = np.asarray(pixels, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        x = (pixels[..., 0] - self.cx) / self.fx
        y = (pixels[..., 1] - self.cy) / self.fy
        return np.stack([x * depth, y * depth, np.broadcast_to(depth, x.shape)], -1)


# The optical frame in a REP-103 body frame (x forward, y left, z up): its z is forward, x is
# right (-y), y is down (-z).
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraMount:
    """The camera's optical frame in the radar frame: ``rotation`` (3, 3) and ``translation`` (3,),
    so radar = rotation @ camera + translation."""

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self):
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64)
        if rotation.shape != (3, 3) or translation.shape != (3,) or not (
                np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise ValueError("a camera mount is a finite (3, 3) rotation and a (3,) translation")
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or np.linalg.det(rotation) < 0:
            raise ValueError("a camera mount's rotation is not a rotation matrix")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def from_body_pose(cls, xyz, rpy) -> CameraMount:
        """From the camera body's pose in the radar frame (REP-103 axes: x forward, y left, z up),
        as ``translation`` (3,) m and roll, pitch, yaw (3,) rad: what a user measures on the robot."""
        body = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64)).as_matrix()
        return cls(body @ OPTICAL_IN_BODY, np.asarray(xyz, dtype=np.float64))

    @classmethod
    def from_quaternion(cls, translation, quaternion_xyzw) -> CameraMount:
        """From a TF transform radar -> camera optical frame (translation, quaternion x y z w)."""
        return cls(Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=np.float64)).as_matrix(),
                   np.asarray(translation, dtype=np.float64))

    @cached_property
    def quaternion(self) -> np.ndarray:
        """The rotation as x, y, z, w (for a TransformStamped)."""
        return Rotation.from_matrix(self.rotation).as_quat()

    def to_radar(self, positions: np.ndarray, rotations: np.ndarray | None = None):
        """Camera positions (..., 3) and global rotations (..., 3, 3) -> radar frame."""
        moved = np.asarray(positions) @ self.rotation.T + self.translation
        if rotations is None:
            return moved
        return moved, self.rotation @ np.asarray(rotations)

    def to_camera(self, positions: np.ndarray) -> np.ndarray:
        """Radar positions (..., 3) -> camera frame."""
        return (np.asarray(positions) - self.translation) @ self.rotation


def mount_from_transforms(transforms, radar_frame: str, camera_frame: str) -> CameraMount | None:
    """The camera's mount from static transforms (objects with ``parent``, ``child``,
    ``translation`` (3,) and ``rotation`` (4,) x y z w, as /tf_static carries them): the chain
    from ``radar_frame`` to ``camera_frame`` through any frames between, each transform walked
    either way. None when the two frames are not connected."""
    # Each frame's pose in the radar frame, found breadth first from the radar frame.
    edges: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for tf in transforms:
        rotation = Rotation.from_quat(np.asarray(tf.rotation, dtype=np.float64)).as_matrix()
        translation = np.asarray(tf.translation, dtype=np.float64)
        edges.setdefault(tf.parent, []).append((tf.child, rotation, translation))
        edges.setdefault(tf.child, []).append((tf.parent, rotation.T, -rotation.T @ translation))
    poses = {radar_frame: (np.eye(3), np.zeros(3))}
    queue = [radar_frame]
    while queue:
        frame = queue.pop(0)
        rotation, translation = poses[frame]
        for child, r, t in edges.get(frame, []):
            if child not in poses:
                poses[child] = (rotation @ r, rotation @ t + translation)
                queue.append(child)
    if camera_frame not in poses:
        return None
    return CameraMount(*poses[camera_frame])
