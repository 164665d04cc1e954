"""Joint sets and mappings, rotation conversions and forward kinematics."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rigid_transform

from ros2_radar_pose.body.joint_sets import (
    HYBRIK_29,
    KINECT_25,
    MARS_19,
    SMPL_24,
    JointSet,
    mapping,
)
from ros2_radar_pose.body.kinematics import forward_kinematics, tree_levels
from ros2_radar_pose.body.limits import EULER_LIMITS, random_pose
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.body.rotations import (
    axis_angle_to_matrix,
    closest_rotation,
    euler_to_matrix,
    geodesic_distance,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    rotation_about,
    rotation_between,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- joint sets and mappings ---------------------------------------------------------------

def test_joint_sets_have_the_documented_trees():
    assert len(SMPL_24) == 24 and len(HYBRIK_29) == 29 and len(KINECT_25) == 25 and len(MARS_19) == 19
    assert [HYBRIK_29.parents[j] for j in range(24, 29)] == [15, 22, 23, 10, 11]
    assert HYBRIK_29.names[24:] == ("head_top", "left_middle_tip", "right_middle_tip", "left_big_toe",
                                    "right_big_toe")
    assert KINECT_25.names[KINECT_25.parents[KINECT_25.index("ThumbLeft")]] == "WristLeft"
    assert KINECT_25.names[KINECT_25.parents[KINECT_25.index("Neck")]] == "SpineShoulder"
    # MARS-19 keeps Kinect's order without hands, hand tips and thumbs.
    assert MARS_19.names[:7] == ("SpineBase", "SpineMid", "Neck", "Head", "ShoulderLeft", "ElbowLeft", "WristLeft")
    assert MARS_19.names[MARS_19.parents[MARS_19.index("Neck")]] == "SpineShoulder"
    with pytest.raises(ValueError, match="cycle"):
        JointSet("loop", ("a", "b", "c"), (-1, 2, 1))


def test_mappings_select_average_and_extrapolate():
    kinect = np.random.default_rng(0).normal(size=(4, 25, 3))
    mars = mapping(KINECT_25, MARS_19).apply(kinect)
    np.testing.assert_array_equal(mars, kinect[:, [KINECT_25.index(n) for n in MARS_19.names]])
    smpl = mapping(MARS_19, SMPL_24).apply(mars)
    m = MARS_19.index
    np.testing.assert_allclose(smpl[:, SMPL_24.index("left_collar")],
                               (mars[:, m("SpineShoulder")] + mars[:, m("ShoulderLeft")]) / 2)
    np.testing.assert_allclose(smpl[:, SMPL_24.index("left_hand")],
                               mars[:, m("WristLeft")] + 0.25 * (mars[:, m("WristLeft")] - mars[:, m("ElbowLeft")]))
    # Composed mappings equal their steps, torch equals NumPy, translation commutes.
    np.testing.assert_allclose(mapping(KINECT_25, SMPL_24).apply(kinect), smpl)
    torch.testing.assert_close(mapping(KINECT_25, SMPL_24).apply(torch.from_numpy(kinect)), torch.from_numpy(smpl))
    np.testing.assert_allclose(mapping(MARS_19, SMPL_24).apply(mars + 1.5), smpl + 1.5)
    assert "no hand" in mapping(KINECT_25, SMPL_24).notes["left_hand"]
    with pytest.raises(ValueError, match="no mapping from smpl_24 to kinect_25"):
        mapping(SMPL_24, KINECT_25)


def test_smpl_to_mars_on_a_body_puts_joints_where_kinect_would():
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4))[0].numpy()
    mars = mapping(HYBRIK_29, MARS_19).apply(rest)
    m = MARS_19.index
    assert mars[m("Neck"), 1] > mars[m("SpineShoulder"), 1] > mars[m("SpineMid"), 1] > mars[m("SpineBase"), 1]
    np.testing.assert_array_equal(mars[m("ElbowLeft")], rest[HYBRIK_29.index("left_elbow")])
    assert set(mapping(SMPL_24, MARS_19).notes) >= {"Neck", "Head", "SpineShoulder"}


# -- rotations ------------------------------------------------------------------------------

def test_conversions_round_trip_and_match_scipy():
    scipy = Rotation.random(100, random_state=0)
    R = torch.from_numpy(scipy.as_matrix())
    torch.testing.assert_close(matrix_to_quaternion(R).abs(), torch.from_numpy(scipy.as_quat()).abs())
    torch.testing.assert_close(quaternion_to_matrix(matrix_to_quaternion(R)), R)
    torch.testing.assert_close(axis_angle_to_matrix(matrix_to_axis_angle(R)), R)
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R)
    torch.testing.assert_close(matrix_to_rotation_6d(R)[:, :3], R[:, :, 0])
    angles = torch.tensor([[0.3, -0.2, 1.1]], dtype=torch.float64)
    torch.testing.assert_close(euler_to_matrix(angles), torch.from_numpy(
        Rotation.from_euler("XYZ", angles.numpy()).as_matrix()))


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, math.pi - 1e-4, math.pi])
def test_gradients_stay_finite_at_zero_and_pi(angle):
    rotvec = torch.tensor([[angle, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    R = axis_angle_to_matrix(rotvec)
    for out in (matrix_to_quaternion(R), matrix_to_rotation_6d(R), R):
        grad, = torch.autograd.grad(out.sum(), rotvec, retain_graph=True)
        assert torch.isfinite(grad).all()
    six = torch.tensor([[1.0, 0, 0, 0, 1, 0]], dtype=torch.float64, requires_grad=True)
    grad, = torch.autograd.grad(rotation_6d_to_matrix(six).sum(), six)
    assert torch.isfinite(grad).all()


def test_rotation_between_and_about():
    u = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    v = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    R = rotation_between(u, v)
    torch.testing.assert_close((R @ u[..., None])[..., 0], v)
    torch.testing.assert_close(R.det(), torch.ones(50, dtype=torch.float64))
    # The smallest such rotation: its axis is u x v.
    torch.testing.assert_close(torch.from_numpy(Rotation.from_matrix(R.numpy()).magnitude()),
                               torch.arccos((u * v).sum(-1)))
    angle = torch.rand(50, dtype=torch.float64) * 6 - 3
    torch.testing.assert_close(rotation_about(u, angle.cos(), angle.sin()), axis_angle_to_matrix(u * angle[:, None]))


# Each conversion against SciPy, batched (2, 3, N, ...) in both precisions. The hard cases: the
# identity and tiny angles (Rodrigues' closed form cancels there), angles just below pi and
# exactly pi (the quaternion's w vanishes), and angles beyond pi (valid axis-angle input).
DTYPES = [torch.float64, torch.float32]
TOL = {torch.float64: {"atol": 1e-12, "rtol": 0.0}, torch.float32: {"atol": 2e-6, "rtol": 0.0}}
# Axes whose components differ in magnitude, so that the quaternion of a half turn about them has
# one largest component and the sign convention a single answer.
AXES = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.6, -0.8, 0], [-0.36, 0.48, -0.8]])
HARD_ANGLES = np.array([0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 4.9e-3, 5.1e-3, 0.1, 0.13, 0.15, 1.0,
                        math.pi / 2, 3.0, math.pi - 1e-3, math.pi - 1e-6])


def batched(rows: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """(6N, ...) -> a (2, 3, N, ...) tensor."""
    return torch.from_numpy(rows).to(dtype).reshape(2, 3, -1, *rows.shape[1:])


def as_numpy(t: torch.Tensor, width: int) -> np.ndarray:
    """Flattened to (M, width...) float64, the leading batch dimensions merged."""
    return t.double().numpy().reshape(-1, *t.shape[t.dim() - width:])


def hard_rotvecs(random: int, seed: int = 0, beyond_pi: bool = False) -> np.ndarray:
    """(6N, 3) rotation vectors: every hard angle about every axis (negated too), then random
    rotations (angles in [0, pi]), and with ``beyond_pi`` angles up to 3 pi."""
    rng = np.random.default_rng(seed)
    angles = HARD_ANGLES if not beyond_pi else np.concatenate([HARD_ANGLES, [math.pi + 0.5, 5.0, 7.0, 9.0]])
    special = (AXES[:, None] * angles[None, :, None]).reshape(-1, 3)
    rows = np.concatenate([special, -special, Rotation.random(random, random_state=seed).as_rotvec()])
    if beyond_pi:
        rows = np.concatenate([rows, rng.normal(size=(random, 3)) * 3.0])
    return rows[:len(rows) // 6 * 6]


def half_turns() -> np.ndarray:
    """(6, 3, 3) rotations by exactly pi, built as 2 a a^T - I: exactly symmetric, so w = 0."""
    axes = np.concatenate([AXES, [[0.48, 0.8, -0.36]]])
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    return 2 * axes[:, :, None] * axes[:, None, :] - np.eye(3)


def hard_matrices(seed: int, dtype: torch.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """``hard_rotvecs`` as matrices plus the exact half turns: (6N, 3, 3), and batched (2, 3, N, 3, 3)."""
    matrices = np.concatenate([Rotation.from_rotvec(hard_rotvecs(400, seed=seed)).as_matrix(), half_turns()])
    return matrices, batched(matrices, dtype)


def align_signs(ours: np.ndarray, expected: np.ndarray, where: np.ndarray) -> None:
    """Flip the rows of ``ours`` at ``where`` that point away from ``expected``'s (a tie between
    two equally right answers, q and -q or v and -v)."""
    ours[where] *= np.sign((ours[where] * expected[where]).sum(-1, keepdims=True))


def assert_rotations(R: torch.Tensor, tol: float):
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=tol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axis_angle_to_matrix_matches_scipy(dtype):
    rotvecs = hard_rotvecs(300, seed=1, beyond_pi=True)
    R = axis_angle_to_matrix(batched(rotvecs, dtype))
    assert R.shape == (2, 3, len(rotvecs) // 6, 3, 3) and R.dtype == dtype
    expected = Rotation.from_rotvec(as_numpy(batched(rotvecs, dtype), 1)).as_matrix()
    np.testing.assert_allclose(as_numpy(R, 2), expected, atol=TOL[dtype]["atol"], rtol=0)
    # Orthonormal to rounding at tiny angles too: a first-order small-angle formula would leave
    # R^T R - I of order angle^2 (1e-14 at 1e-7 rad).
    assert_rotations(R, 4e-16 * 8 if dtype == torch.float64 else 1e-6)


def test_axis_angle_to_matrix_known_answers():
    quarter = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(quarter, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64))
    half = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(half, torch.diag(torch.tensor([1.0, -1, -1], dtype=torch.float64)))
    torch.testing.assert_close(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3), atol=0, rtol=0)
    # About x, R[2, 1] = sin and R[1, 1] = cos to the last digit, on both sides of the switch to the
    # Taylor terms (5e-3 in float64): a wrong term there would show at 1e-13.
    for angle in (1e-12, 1e-6, 1e-3, 4.9e-3, 5.1e-3, 0.13, 0.15, 1.0, 3.0):
        R = axis_angle_to_matrix(torch.tensor([angle, 0.0, 0.0], dtype=torch.float64))
        assert R[2, 1].item() == pytest.approx(math.sin(angle), rel=1e-15, abs=0)
        assert R[1, 1].item() == pytest.approx(math.cos(angle), rel=0, abs=3e-16)
    # (2 pi) about any axis is the identity.
    torch.testing.assert_close(axis_angle_to_matrix(torch.tensor([0.0, 2 * math.pi, 0.0], dtype=torch.float64)),
                               torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_axis_angle_to_matrix_gradient_at_identity_is_the_cross_product_basis(dtype):
    # dR/dv_k at v = 0 is skew(e_k): the derivative of the loss sum(R * W) is sum(skew(e_k) * W).
    weights = torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    rotvec = torch.zeros(2, 3, 3, dtype=dtype, requires_grad=True)
    grad, = torch.autograd.grad((axis_angle_to_matrix(rotvec) * weights).sum(), rotvec)
    expected = torch.stack([weights[..., 2, 1] - weights[..., 1, 2], weights[..., 0, 2] - weights[..., 2, 0],
                            weights[..., 1, 0] - weights[..., 0, 1]], dim=-1)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, expected)


def test_axis_angle_to_matrix_gradients_match_finite_differences():
    # At zero, at tiny angles, on both sides of the switch to the Taylor terms (5e-3 in float64),
    # near and beyond pi.
    axes = torch.nn.functional.normalize(torch.randn(11, 3, generator=torch.Generator().manual_seed(1),
                                                     dtype=torch.float64), dim=-1)
    angles = torch.tensor([0.0, 1e-8, 1e-4, 4.9e-3, 5.1e-3, 0.1, 1.0, 3.0, math.pi - 1e-6, math.pi, 5.0],
                          dtype=torch.float64)
    rotvecs = (axes * angles[:, None]).requires_grad_()
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (rotvecs,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_quaternion_to_matrix_matches_scipy(dtype):
    rng = np.random.default_rng(2)
    quats = rng.normal(size=(600, 4))
    quats[:4] = np.eye(4)[[3, 0, 1, 2]]                     # identity and the three half turns
    quats[4, :] = [0.0, 0.0, 0.0, -1.0]                     # the identity's other quaternion
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    q = batched(quats, dtype)
    R = quaternion_to_matrix(q)
    assert R.shape == (2, 3, 100, 3, 3) and R.dtype == dtype
    np.testing.assert_allclose(as_numpy(R, 2), Rotation.from_quat(as_numpy(q, 1)).as_matrix(),
                               atol=TOL[dtype]["atol"], rtol=0)
    torch.testing.assert_close(quaternion_to_matrix(-q), R, atol=0, rtol=0)
    # XYZW: (0, 0, sin(pi/4), cos(pi/4)) is a quarter turn about z.
    quarter = torch.tensor([0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)], dtype=dtype)
    torch.testing.assert_close(quaternion_to_matrix(quarter), torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]],
                                                                            dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matrix_to_quaternion_matches_scipy_sign_included(dtype):
    matrices, R = hard_matrices(3, dtype)
    q = matrix_to_quaternion(R)
    assert q.shape == (2, 3, len(matrices) // 6, 4) and q.dtype == dtype
    ours, expected = as_numpy(q, 1), Rotation.from_matrix(as_numpy(R, 2)).as_quat()
    # Where two components tie in magnitude (a quarter turn's z and w), rounding picks the branch
    # and so the sign; elsewhere the sign must be SciPy's.
    top = np.sort(np.abs(expected), axis=-1)
    tied = top[:, -1] - top[:, -2] < 1e-5
    align_signs(ours, expected, tied)
    assert tied.sum() < len(tied) // 10
    np.testing.assert_allclose(ours, expected, atol=TOL[dtype]["atol"], rtol=0)
    torch.testing.assert_close(torch.linalg.vector_norm(q, dim=-1), torch.ones(q.shape[:-1], dtype=dtype))
    # roma's and SciPy's sign: the largest-magnitude component positive (either of two that tie
    # within rounding, as a quarter turn's z and w do), so w < 0 happens.
    assert (q.amax(-1) >= q.abs().amax(-1) - 1e-6).all() and (q[..., 3] < -0.01).any()
    torch.testing.assert_close(quaternion_to_matrix(q), R, **TOL[dtype])


def test_matrix_to_quaternion_known_answers():
    # 3 rad about -x: the vector part (-sin 1.5, 0, 0) outweighs w = cos 1.5, so the quaternion is
    # negated to make x positive, and w comes out negative (roma 1.8 and SciPy agree).
    R = axis_angle_to_matrix(torch.tensor([-3.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(matrix_to_quaternion(R), torch.tensor([math.sin(1.5), 0, 0, -math.cos(1.5)],
                                                                     dtype=torch.float64))
    # 0.5 rad about -x: w is the largest component and stays positive.
    R = axis_angle_to_matrix(torch.tensor([-0.5, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(matrix_to_quaternion(R), torch.tensor([-math.sin(0.25), 0, 0, math.cos(0.25)],
                                                                     dtype=torch.float64))
    torch.testing.assert_close(matrix_to_quaternion(torch.eye(3)), torch.tensor([0.0, 0, 0, 1]), atol=0, rtol=0)
    half = torch.diag(torch.tensor([-1.0, 1, -1]))                       # a half turn about y
    torch.testing.assert_close(matrix_to_quaternion(half), torch.tensor([0.0, 1, 0, 0]), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matrix_to_axis_angle_matches_scipy(dtype):
    matrices, R = hard_matrices(4, dtype)
    rotvec = matrix_to_axis_angle(R)
    assert rotvec.shape == (2, 3, len(matrices) // 6, 3) and rotvec.dtype == dtype
    ours, expected = as_numpy(rotvec, 1), Rotation.from_matrix(as_numpy(R, 2)).as_rotvec()
    # Within rounding of pi, v and -v are the same rotation: which one comes out is a tie.
    at_pi = np.linalg.norm(expected, axis=-1) > math.pi - (1e-12 if dtype == torch.float64 else 1e-5)
    align_signs(ours, expected, at_pi)
    assert at_pi.sum() >= 6
    np.testing.assert_allclose(ours, expected, atol=TOL[dtype]["atol"] * 5, rtol=0)
    assert (torch.linalg.vector_norm(rotvec, dim=-1) <= math.pi + TOL[dtype]["atol"]).all()
    torch.testing.assert_close(axis_angle_to_matrix(rotvec), R, atol=TOL[dtype]["atol"] * 5, rtol=0)


def test_matrix_to_axis_angle_keeps_tiny_angles_and_half_turns_exact():
    axes = torch.from_numpy(AXES[[3, 4]])
    for angle in (1e-12, 1e-9, 1e-6, 1e-3, math.pi - 1e-6):
        rotvec = axes * angle
        # Relative accuracy, not just absolute: an answer of zero would pass an absolute test.
        torch.testing.assert_close(matrix_to_axis_angle(axis_angle_to_matrix(rotvec)), rotvec, atol=0, rtol=1e-9)
    half = matrix_to_axis_angle(torch.from_numpy(half_turns()))
    torch.testing.assert_close(torch.linalg.vector_norm(half, dim=-1), torch.full((6,), math.pi, dtype=torch.float64))
    torch.testing.assert_close(axis_angle_to_matrix(half), torch.from_numpy(half_turns()))


def test_matrix_to_axis_angle_gradient_at_identity():
    # Near the identity the rotation vector is the skew part of R: d v / d R is finite there.
    R = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_()
    weights = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], dtype=torch.float64)
    grad, = torch.autograd.grad((matrix_to_axis_angle(R) * weights).sum(), R)
    assert torch.isfinite(grad).all()
    # v = (R21 - R12, R02 - R20, R10 - R01) / 2 to first order.
    rotvec = (torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 1e-7)
    perturbed = (R + (axis_angle_to_matrix(rotvec) - torch.eye(3, dtype=torch.float64))).detach()
    torch.testing.assert_close((grad * (perturbed - R.detach())).sum(), (weights * rotvec).sum(),
                               atol=1e-20, rtol=1e-6)


def gram_schmidt_by_qr(six: np.ndarray) -> np.ndarray:
    """(M, 6) -> (M, 3, 3) through NumPy's QR, signs fixed so that R's diagonal is positive: that
    is Gram-Schmidt on the two columns, the third their cross product."""
    q, r = np.linalg.qr(np.stack([six[:, :3], six[:, 3:]], axis=-1))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    return np.concatenate([q, np.cross(q[..., 0], q[..., 1])[..., None]], axis=-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_6d_to_matrix_is_gram_schmidt(dtype):
    rng = np.random.default_rng(6)
    six = rng.normal(size=(600, 6)) * rng.uniform(0.1, 10.0, size=(600, 1))
    x = batched(six, dtype)
    R = rotation_6d_to_matrix(x)
    assert R.shape == (2, 3, 100, 3, 3) and R.dtype == dtype
    np.testing.assert_allclose(as_numpy(R, 2), gram_schmidt_by_qr(as_numpy(x, 1)), atol=TOL[dtype]["atol"] * 50)
    assert_rotations(R, 1e-14 if dtype == torch.float64 else 2e-6)
    # Only the first column's direction matters, and the second's part orthogonal to it.
    first, second = x[..., :3], x[..., 3:]
    moved = torch.cat([2.5 * first, 3.0 * second - 4.0 * first], dim=-1)
    torch.testing.assert_close(rotation_6d_to_matrix(moved), R, atol=TOL[dtype]["atol"] * 50, rtol=0)
    torch.testing.assert_close(rotation_6d_to_matrix(torch.tensor([0.0, 3, 0, -1, 5, 0], dtype=dtype)),
                               torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=dtype))


EULER_CONVENTIONS = ["XYZ", "ZYX", "YZX", "ZXZ", "XYX", "xyz", "zyx", "yzx", "zxz", "yxy", "Z", "xy"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("convention", EULER_CONVENTIONS)
def test_euler_to_matrix_matches_scipy(convention, dtype):
    rng = np.random.default_rng(7)
    angles = rng.uniform(-math.pi, math.pi, size=(120, len(convention)))
    if len(convention) == 3:
        angles[:6, 1] = [math.pi / 2, -math.pi / 2, 0.0, math.pi, 1e-9, -1e-9]     # gimbal lock and the like
    a = batched(angles, dtype)
    R = euler_to_matrix(a, convention)
    assert R.shape == (2, 3, 20, 3, 3) and R.dtype == dtype
    expected = Rotation.from_euler(convention, as_numpy(a, 1)).as_matrix()
    np.testing.assert_allclose(as_numpy(R, 2), expected, atol=TOL[dtype]["atol"], rtol=0)


def test_euler_to_matrix_intrinsic_and_extrinsic():
    angles = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    # Intrinsic X-Y-Z is extrinsic z-y-x with the angles reversed, and differs from extrinsic x-y-z.
    torch.testing.assert_close(euler_to_matrix(angles, "XYZ"), euler_to_matrix(angles.flip(-1), "zyx"))
    assert not torch.allclose(euler_to_matrix(angles, "XYZ"), euler_to_matrix(angles, "xyz"))
    torch.testing.assert_close(euler_to_matrix(angles), euler_to_matrix(angles, "XYZ"))
    torch.testing.assert_close(euler_to_matrix(torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64)),
                               torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64))
    for bad in ("XyZ", "XYW", "", "xyz "):
        with pytest.raises(ValueError, match="convention"):
            euler_to_matrix(angles, bad)
    with pytest.raises(ValueError, match="2 angles"):
        euler_to_matrix(angles, "XY")


@pytest.mark.parametrize("dtype", DTYPES)
def test_geodesic_distance_matches_scipy(dtype):
    first = Rotation.random(300, random_state=8)
    steps = Rotation.from_rotvec(hard_rotvecs(300, seed=8)[:300])
    second = first * steps
    R1, R2 = (batched(r.as_matrix(), dtype) for r in (first, second))
    distance = geodesic_distance(R1, R2)
    assert distance.shape == (2, 3, 50) and distance.dtype == dtype
    expected = (Rotation.from_matrix(as_numpy(R1, 2)).inv() * Rotation.from_matrix(as_numpy(R2, 2))).magnitude()
    np.testing.assert_allclose(distance.double().numpy().ravel(), expected, atol=TOL[dtype]["atol"] * 5, rtol=0)
    # Accurate for nearby rotations, where the arccos of the trace rounds to 0, and at a half turn,
    # where asin(chord) is off by sqrt(eps) (7e-4 rad in float32).
    step = axis_angle_to_matrix(torch.tensor([1e-8, 0.0, 0.0], dtype=torch.float64))
    assert geodesic_distance(torch.eye(3, dtype=torch.float64), step).item() == pytest.approx(1e-8, rel=1e-6)
    step = axis_angle_to_matrix(torch.tensor([1e-4, 0.0, 0.0]))
    assert geodesic_distance(torch.eye(3), step).item() == pytest.approx(1e-4, rel=1e-5)
    half = torch.from_numpy(half_turns()).to(dtype)
    torch.testing.assert_close(geodesic_distance(torch.eye(3, dtype=dtype), half),
                               torch.full((6,), math.pi, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_closest_rotation_matches_scipy_align_vectors(dtype):
    # argmax_R trace(R^T M) for M = sum a_i b_i^T is the R minimising sum |a_i - R b_i|^2.
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(2, 60, 5, 3))
    M = batched(np.einsum("nki,nkj->nij", a, b), dtype)
    R = closest_rotation(M)
    assert R.shape == (2, 3, 10, 3, 3) and R.dtype == dtype
    a_flat, b_flat = a.reshape(60, 5, 3), b.reshape(60, 5, 3)
    expected = np.stack([Rotation.align_vectors(a_flat[n], b_flat[n])[0].as_matrix() for n in range(60)])
    np.testing.assert_allclose(as_numpy(R, 2), expected, atol=1e-10 if dtype == torch.float64 else 1e-5, rtol=0)
    assert_rotations(R, 1e-14 if dtype == torch.float64 else 2e-6)
    # A scaled rotation is its own answer; a reflection gives up its weakest direction.
    rotations = batched(Rotation.random(60, random_state=10).as_matrix(), dtype)
    torch.testing.assert_close(closest_rotation(3.0 * rotations), rotations, **TOL[dtype])
    torch.testing.assert_close(closest_rotation(torch.diag(torch.tensor([3.0, 2, -1], dtype=dtype))),
                               torch.eye(3, dtype=dtype))
    torch.testing.assert_close(closest_rotation(torch.diag(torch.tensor([3.0, -2, 1], dtype=dtype))),
                               torch.diag(torch.tensor([1.0, -1, -1], dtype=dtype)))


def test_closest_rotation_gradients():
    generator = torch.Generator().manual_seed(11)
    M = torch.randn(8, 3, 3, dtype=torch.float64, generator=generator)
    M[0] = torch.diag(torch.tensor([3.0, -2, 1], dtype=torch.float64))              # a reflection
    M.requires_grad_()
    assert torch.autograd.gradcheck(closest_rotation, (M,))
    # The same as autograd through torch's SVD where that is well defined.
    weights = torch.randn(8, 3, 3, dtype=torch.float64, generator=generator)
    u, s, vh = torch.linalg.svd(M)
    sign = torch.linalg.det(u @ vh).sign().detach()
    naive = u @ torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1)) @ vh
    expected, = torch.autograd.grad((naive * weights).sum(), M)
    grad, = torch.autograd.grad((closest_rotation(M) * weights).sum(), M)
    torch.testing.assert_close(grad, expected)
    # Where the answer is not unique (singular values 1, 1, -1 after the flip), torch's own SVD
    # gradient is not finite; the damped one stays bounded.
    ambiguous = torch.diag(torch.tensor([1.0, 1, -1], dtype=torch.float64)).repeat(2, 1, 1).requires_grad_()
    grad, = torch.autograd.grad((closest_rotation(ambiguous) * weights[:2]).sum(), ambiguous)
    assert torch.isfinite(grad).all() and grad.abs().max() < 1e3


@pytest.mark.parametrize("device", DEVICES)
def test_rotations_give_the_same_answers_on_every_device(device):
    rotvecs = torch.from_numpy(hard_rotvecs(30, seed=12, beyond_pi=True))
    R = axis_angle_to_matrix(rotvecs)
    six = torch.randn(len(R), 6, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    for function, x in ((axis_angle_to_matrix, rotvecs), (matrix_to_axis_angle, R), (matrix_to_quaternion, R),
                        (quaternion_to_matrix, matrix_to_quaternion(R)), (rotation_6d_to_matrix, six),
                        (euler_to_matrix, rotvecs), (closest_rotation, R + 0.1 * six[:, :3, None])):
        torch.testing.assert_close(function(x.to(device)).cpu(), function(x), atol=1e-12, rtol=0)
        torch.testing.assert_close(function(x.float().to(device)).cpu(), function(x.float()), atol=1e-5, rtol=0)
    torch.testing.assert_close(geodesic_distance(R.to(device), R.flip(0).to(device)).cpu(),
                               geodesic_distance(R, R.flip(0)), atol=1e-12, rtol=0)


# -- forward kinematics ---------------------------------------------------------------------

def test_tree_levels_group_joints_by_depth():
    levels = tree_levels(SMPL_24.parents)
    assert levels[0] == ((1, 2, 3), (0, 0, 0)) and len(levels) == 8
    assert sorted(j for joints, _ in levels for j in joints) == list(range(1, 24))
    assert len(tree_levels(HYBRIK_29.parents)) == 9


@pytest.mark.parametrize("device", DEVICES)
def test_forward_kinematics_matches_smplx_and_a_joint_loop(device):
    generator = torch.Generator().manual_seed(3)
    rotations = random_pose(8, generator, device=device)
    rest = AnthropometricBody().to(device).rest_joints(torch.randn(8, 4, generator=generator, dtype=torch.float64
                                                                    ).to(device))
    translation = torch.randn(8, 3, dtype=torch.float64, device=device)
    joints, global_rotations = forward_kinematics(rotations, rest, translation=translation)
    smplx_joints, transforms = batch_rigid_transform(rotations, rest[:, :24], torch.tensor(SMPL_24.parents))
    torch.testing.assert_close(joints[:, :24], smplx_joints + translation[:, None])
    torch.testing.assert_close(global_rotations, transforms[:, :, :3, :3])
    for leaf in range(24, 29):       # leaves hang from their parent's frame
        parent = HYBRIK_29.parents[leaf]
        bone = (rest[:, leaf] - rest[:, parent])[..., None]
        expected = joints[:, parent] + (global_rotations[:, parent] @ bone)[..., 0]
        torch.testing.assert_close(joints[:, leaf], expected)


def test_forward_kinematics_is_differentiable():
    rotvecs = (torch.randn(2, 24, 3, dtype=torch.float64) * 0.3).requires_grad_()
    rest = AnthropometricBody().rest_joints(torch.zeros(2, 4)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda r, x: forward_kinematics(axis_angle_to_matrix(r), x)[0], (rotvecs, rest))


def test_random_poses_stay_inside_the_limits():
    R = random_pose(500, torch.Generator().manual_seed(4))
    # Euler angles read back uniquely where the middle angle stays within +-pi/2 (not the pelvis,
    # shoulders and elbows).
    unique = (EULER_LIMITS[:, 1].abs() < math.pi / 2).all(-1)
    angles = torch.from_numpy(Rotation.from_matrix(R[:, unique].reshape(-1, 3, 3).numpy()).as_euler("XYZ"))
    angles = angles.reshape(len(R), -1, 3)
    low, high = EULER_LIMITS[unique, :, 0], EULER_LIMITS[unique, :, 1]
    assert unique.sum() == 19 and ((angles >= low - 1e-9) & (angles <= high + 1e-9)).all()
