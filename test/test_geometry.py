"""Joint sets and mappings, rotation conversions and forward kinematics."""
import math

import numpy as np
import pytest
import roma
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
    euler_to_matrix,
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
    R = roma.random_rotmat(100, dtype=torch.float64)
    scipy = Rotation.from_matrix(R.numpy())
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
    torch.testing.assert_close(roma.rotmat_to_rotvec(R).norm(dim=-1), torch.arccos((u * v).sum(-1)))
    angle = torch.rand(50, dtype=torch.float64) * 6 - 3
    torch.testing.assert_close(rotation_about(u, angle.cos(), angle.sin()), axis_angle_to_matrix(u * angle[:, None]))


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
    angles = roma.rotmat_to_euler("XYZ", R[:, unique])
    low, high = EULER_LIMITS[unique, :, 0], EULER_LIMITS[unique, :, 1]
    assert unique.sum() == 19 and ((angles >= low - 1e-9) & (angles <= high + 1e-9)).all()
