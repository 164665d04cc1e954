"""Rotation conversions for batched torch tensors, with stable gradients.

Written here rather than taken from ``roma``, which was the bottleneck of a node's start: importing
it imports ``torch._dynamo`` (it wraps functions with ``torch._dynamo.disable`` at import time),
1.5-2.3 s of the few seconds a restarted node has before it must publish again, for a handful of
small functions. Each one below keeps roma's (and SciPy's) conventions and numerics: small-angle
Taylor terms, the quaternion of Shepperd's branch choice, Procrustes with a damped SVD backward.

Conventions: quaternions are (x, y, z, w) like ROS, roma and SciPy; the 6D representation is the
first two columns of the rotation matrix, column 0 then column 1 (Zhou et al., CVPR 2019); shapes
are (..., 3) axis-angle, (..., 4) quaternion, (..., 6) 6D, (..., 3, 3) matrix; any leading batch
shape, dtype and device.
"""
from __future__ import annotations

import math
from functools import lru_cache, wraps

import torch

_ONE_OVER_2SQRT2 = 1.0 / (2.0 * math.sqrt(2.0))


def _sinc_of_square(square: torch.Tensor) -> torch.Tensor:
    """sin(x) / x from x^2 (...), with a Taylor expansion near 0.

    Taking x^2 rather than x keeps the small-angle branch free of the square root, whose
    derivative is infinite at 0: gradients stay finite at the identity. The switch point,
    2 eps^(1/6) (5e-3 in float64, 0.14 in float32), is roma's: below it the closed form's
    derivative loses more to cancellation than the Taylor series loses to truncation.
    """
    threshold = 2.0 * torch.finfo(square.dtype).eps ** (1 / 6)
    small = square < threshold * threshold
    # Only the branch torch.where keeps may see x = 0: the other's NaN would leak into gradients.
    x = torch.where(small, torch.ones_like(square), square).sqrt()
    return torch.where(small, 1.0 - square / 6.0 + square * square / 120.0, torch.sin(x) / x)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vector (axis times angle, radians) -> (..., 3, 3), Rodrigues' formula.

    R = cos(t) I + sinc(t) [v]x + (1 - cos(t)) / t^2 v v^T for v of norm t, with
    (1 - cos t) / t^2 written as sinc(t / 2)^2 / 2: no cancellation for small t.
    """
    square = (rotvec * rotvec).sum(-1)
    a = _sinc_of_square(square)
    b = 0.5 * _sinc_of_square(0.25 * square) ** 2
    c = 1.0 - b * square                                 # cos(t), accurate for small t too
    x, y, z = rotvec.unbind(-1)
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    ax, ay, az = a * x, a * y, a * z
    return torch.stack([c + b * x * x, bxy - az, bxz + ay,
                        bxy + az, c + b * y * y, byz - ax,
                        bxz - ay, byz + ax, c + b * z * z], dim=-1).unflatten(-1, (3, 3))


def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) unit quaternion (x, y, z, w) -> (..., 3, 3). Not normalised first, as in roma."""
    x, y, z, w = quat.unbind(-1)
    x2, y2, z2, w2 = x * x, y * y, z * z, w * w
    xy, zw, xz, yw, yz, xw = x * y, z * w, x * z, y * w, y * z, x * w
    return torch.stack([x2 - y2 - z2 + w2, 2 * (xy - zw), 2 * (xz + yw),
                        2 * (xy + zw), -x2 + y2 - z2 + w2, 2 * (yz - xw),
                        2 * (xz - yw), 2 * (yz + xw), -x2 - y2 + z2 + w2], dim=-1).unflatten(-1, (3, 3))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit quaternion (x, y, z, w).

    Shepperd's method in Markley's form (J. Guidance 31(2), 2008): each row i of the symmetric
    4x4 matrix below is 4 q_i q, and the row with the largest diagonal 4 q_i^2 is normalised, so
    no division by a small component. The sign is therefore the one making the largest-magnitude
    component positive, as roma 1.8 and SciPy's ``as_quat()`` give it (w is negative for about a
    third of random rotations). All four rows are built, then one gathered: no data-dependent
    indexing, so no device synchronisation.
    """
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = (row.unbind(-1) for row in matrix.unbind(-2))
    rows = torch.stack([1 + m00 - m11 - m22, m01 + m10, m02 + m20, m21 - m12,
                        m01 + m10, 1 + m11 - m22 - m00, m12 + m21, m02 - m20,
                        m02 + m20, m12 + m21, 1 + m22 - m00 - m11, m10 - m01,
                        m21 - m12, m02 - m20, m10 - m01, 1 + m00 + m11 + m22], dim=-1).unflatten(-1, (4, 4))
    best = rows.diagonal(dim1=-2, dim2=-1).argmax(dim=-1)
    row = torch.gather(rows, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    return row / torch.linalg.vector_norm(row, dim=-1, keepdim=True)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) rotation vector of angle in [0, pi], through the quaternion.

    The half angle comes from atan2(|v|, w), accurate over the whole range (arccos of the trace
    loses half the digits near 0 and pi); angle / sin(half angle) uses its Taylor series near 0.
    """
    quat = matrix_to_quaternion(matrix)
    # w >= 0 picks the half angle in [0, pi/2], the angle in [0, pi]. At exactly pi (w = 0) both
    # signs are the same rotation; SciPy keeps the quaternion as it is, so does this.
    quat = torch.where(quat[..., 3:] < 0, -quat, quat)
    vector, w = quat[..., :3], quat[..., 3]
    half = torch.atan2(torch.linalg.vector_norm(vector, dim=-1), w)
    return (2.0 / _sinc_of_square(half * half))[..., None] * vector


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two columns (roma's special_gramschmidt):
    column 0 normalised, column 1 made orthogonal to it and normalised, column 2 their cross
    product. Colinear columns have no answer (NaN), as in roma."""
    first, second = x[..., :3], x[..., 3:]
    first = first / torch.linalg.vector_norm(first, dim=-1, keepdim=True)
    second = second - (first * second).sum(-1, keepdim=True) * first
    second = second / torch.linalg.vector_norm(second, dim=-1, keepdim=True)
    return torch.stack([first, second, torch.linalg.cross(first, second, dim=-1)], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): column 0 then column 1."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


# The two axes (i, j) an elementary rotation about axis k turns: +angle carries i towards j.
_TURNED = {0: (1, 2), 1: (2, 0), 2: (0, 1)}


def _elementary(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """(...) angles -> (..., 3, 3) rotations about coordinate ``axis``."""
    cos, sin = angle.cos(), angle.sin()
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    entries = [zero] * 9
    i, j = _TURNED[axis]
    entries[3 * axis + axis] = one
    entries[3 * i + i], entries[3 * j + j], entries[3 * i + j], entries[3 * j + i] = cos, cos, -sin, sin
    return torch.stack(entries, dim=-1).unflatten(-1, (3, 3))


def euler_to_matrix(angles: torch.Tensor, convention: str = "XYZ") -> torch.Tensor:
    """(..., D) Euler angles (radians) -> (..., 3, 3), with roma's and SciPy's conventions.

    ``convention`` names D axes: upper case ("XYZ", "ZXZ") are intrinsic, about the body's axes
    as it turns, so R = R1 R2 R3; lower case ("xyz") are extrinsic, about the fixed axes, so
    R = R3 R2 R1. The two cases cannot be mixed.
    """
    if not convention or not (convention.isupper() or convention.islower()) \
            or set(convention.lower()) - set("xyz"):
        raise ValueError(f"Euler convention {convention!r}: expected axes from x, y, z, all upper case "
                         "(intrinsic) or all lower case (extrinsic)")
    if angles.shape[-1] != len(convention):
        raise ValueError(f"{len(convention)} angles expected for {convention!r}, got shape {tuple(angles.shape)}")
    rotations = [_elementary("xyz".index(axis), angle)
                 for axis, angle in zip(convention.lower(), angles.unbind(-1))]
    if convention.islower():
        rotations.reverse()
    result = rotations[0]
    for rotation in rotations[1:]:
        result = result @ rotation
    return result


def geodesic_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Radians in [0, pi] between (..., 3, 3) rotations: the angle of A = R1^T R2 as
    atan2(sin, cos), sin from A's antisymmetric part (|A - A^T|_F = 2 sqrt(2) sin) and cos from its
    trace. Accurate over the whole range, where the arccos of the trace loses half the digits
    near 0 and pi, and roma's chord formula (2 asin(|R2 - R1|_F / 2 sqrt(2))) near pi."""
    relative = R1.transpose(-1, -2) @ R2
    sin = torch.linalg.matrix_norm(relative - relative.transpose(-1, -2)) * _ONE_OVER_2SQRT2
    cos = 0.5 * (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0)
    return torch.atan2(sin, cos)


def _damped_inverse(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / (x^2 + eps^2): 1 / x where x is large, bounded by 1 / (2 eps) where it vanishes."""
    return x / (x * x + eps * eps)


class _ClosestRotation(torch.autograd.Function):
    """R = U diag(1, 1, det) V^T from the SVD M = U S V^T, with a backward that damps the terms
    1 / (s_k + s_l) of the signed singular values, infinite where the answer is not unique
    (torch's own SVD backward returns NaN or huge values there)."""

    @staticmethod
    def forward(ctx, M: torch.Tensor, gradient_eps: float) -> torch.Tensor:
        U, S, Vh = torch.linalg.svd(M)
        # A reflection (det U det V = -1) becomes the closest rotation by flipping the smallest
        # singular direction.
        sign = torch.where(torch.linalg.det(U) * torch.linalg.det(Vh) < 0, -1.0, 1.0).to(M.dtype)
        flip = torch.cat([torch.ones_like(S[..., :-1]), sign[..., None]], dim=-1)
        U, S = U * flip[..., None, :], S * flip
        ctx.save_for_backward(U, S, Vh)
        ctx.gradient_eps = gradient_eps
        return U @ Vh

    @staticmethod
    @torch.autograd.function.once_differentiable      # U, S, V enter the backward as constants
    def backward(ctx, grad_R: torch.Tensor):
        # dR = U Z V^T with Z_kl = (A_kl - A_lk) / (s_k + s_l), A = U^T dM V: the adjoint maps
        # G = U^T grad_R V to (G - G^T) / (s_k + s_l), then back with U . V^T.
        U, S, Vh = ctx.saved_tensors
        G = U.transpose(-1, -2) @ grad_R @ Vh.transpose(-1, -2)
        inverse = _damped_inverse(S[..., :, None] + S[..., None, :], ctx.gradient_eps)
        return U @ ((G - G.transpose(-1, -2)) * inverse) @ Vh, None


def closest_rotation(M: torch.Tensor, gradient_eps: float = 1e-5) -> torch.Tensor:
    """argmax_R trace(R^T M) over rotations, (..., 3, 3) (special Procrustes). The gradient terms
    1 / (s_k + s_l) become damped (s_k + s_l) / ((s_k + s_l)^2 + gradient_eps^2), as roma's, so
    the threshold is absolute: scale M to about unit size first."""
    return _ClosestRotation.apply(M, gradient_eps)


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
