"""Rotation conversions for batched torch tensors, with stable gradients.

Thin names over ``roma`` (which handles the small-angle and near-pi cases of each conversion and
damps the SVD gradients of Procrustes), plus the few constructions the IK needs. Conventions:
quaternions are (x, y, z, w) like ROS and SciPy; the 6D representation is the first two
columns of the rotation matrix, column 0 then column 1 (Zhou et al., CVPR 2019); shapes are
(..., 3) axis-angle, (..., 4) quaternion, (..., 6) 6D, (..., 3, 3) matrix.
"""
from __future__ import annotations

from functools import lru_cache, wraps

import roma
import torch

axis_angle_to_matrix = roma.rotvec_to_rotmat
matrix_to_axis_angle = roma.rotmat_to_rotvec
quaternion_to_matrix = roma.unitquat_to_rotmat
matrix_to_quaternion = roma.rotmat_to_unitquat
geodesic_distance = roma.rotmat_geodesic_distance      # radians between (..., 3, 3) rotations
closest_rotation = roma.special_procrustes             # argmax_R trace(R^T M) over rotations


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two columns."""
    return roma.special_gramschmidt(torch.stack([x[..., :3], x[..., 3:]], dim=-1))


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): column 0 then column 1."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def euler_to_matrix(angles: torch.Tensor, convention: str = "XYZ") -> torch.Tensor:
    """(..., 3) intrinsic Euler angles (radians) -> (..., 3, 3)."""
    return roma.euler_to_rotmat(convention, angles)


def cached_constants(maxsize: int):
    """``lru_cache`` for functions that build constant tensors, built outside inference mode: made
    inside it (on a first call from inference code), they could never be saved for backward by a
    later call that needs gradients."""
    def decorate(build):
        cached = lru_cache(maxsize=maxsize)(build)

        @wraps(build)
        def constants(*args):
            with torch.inference_mode(False):
                return cached(*args)
        constants.cache_clear = cached.cache_clear
        return constants
    return decorate


@cached_constants(maxsize=16)
def _constants(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3x3 identity, and the (3, 9) matrix with skew(v) flattened row by row = v @ it (one
    small matrix product, fast at any batch size)."""
    skew_map = torch.zeros(3, 9, dtype=dtype, device=device)
    skew_map[0, 5], skew_map[0, 7], skew_map[1, 2], skew_map[1, 6], skew_map[2, 1], skew_map[2, 3] = -1, 1, 1, -1, -1, 1
    return torch.eye(3, dtype=dtype, device=device), skew_map


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix: skew(a) @ b == a x b."""
    return (v @ _constants(v.dtype, v.device)[1]).unflatten(-1, (3, 3))


def rotation_between(u: torch.Tensor, v: torch.Tensor, cos: torch.Tensor | None = None) -> torch.Tensor:
    """The smallest rotation carrying unit vector ``u`` onto unit vector ``v``, (..., 3, 3).

    R = c I + [w]x + w w^T / (1 + c) with w = u x v, c = u . v (Rodrigues with [w]x^2 expanded):
    no normalised axis, so it stays exact and smooth as v -> u. Undefined for v = -u, which the
    caller must keep out. ``cos`` (...), when the caller has u . v already.
    """
    w = torch.linalg.cross(u, v, dim=-1)
    c = ((u * v).sum(-1) if cos is None else cos)[..., None, None]
    eye = _constants(u.dtype, u.device)[0]
    return c * eye + skew(w) + w[..., :, None] * w[..., None, :] / (1.0 + c)


def rotation_about(axis: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotation by the angle with (cos, sin) about unit ``axis`` (..., 3); cos, sin (...)."""
    cos, sin = cos[..., None, None], sin[..., None, None]
    eye = _constants(axis.dtype, axis.device)[0]
    return cos * eye + sin * skew(axis) + (1.0 - cos) * axis[..., :, None] * axis[..., None, :]
