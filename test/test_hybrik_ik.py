"""HybrIK's analytical IK: known answers, the adaptive version's advantage, degenerate input."""
import numpy as np
import pytest
import torch
from smpl_synthetic import synthetic_smpl_arrays

from bench.reference_ik import reference_inverse_kinematics
from ros2_radar_pose.body.hybrik_ik import inverse_kinematics, twist_from_rotations
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.limits import random_pose
from ros2_radar_pose.body.models import AnthropometricBody, SMPLBody
from ros2_radar_pose.body.rotations import axis_angle_to_matrix, geodesic_distance

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
J = HYBRIK_29.index


@pytest.fixture(scope="module")
def smpl_body(tmp_path_factory):
    path = tmp_path_factory.mktemp("smpl") / "smpl.npz"
    np.savez(path, **synthetic_smpl_arrays())
    return SMPLBody(path)


def posed(body, batch, seed, device="cpu"):
    """Random shapes, poses within joint limits (any root orientation), translations: the truth."""
    generator = torch.Generator().manual_seed(seed)
    betas = torch.randn(batch, body.num_betas, generator=generator, dtype=torch.float64)
    rotations = random_pose(batch, generator)
    translation = torch.randn(batch, 3, generator=generator, dtype=torch.float64)
    rest = body.rest_joints(betas)
    joints, _ = forward_kinematics(rotations, rest, translation=translation)
    return (rotations.to(device), rest.to(device), joints.to(device), translation.to(device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", ["anthropometric", "smpl"])
def test_fk_twist_ik_recovers_every_rotation_and_joint(model, device, smpl_body):
    body = AnthropometricBody() if model == "anthropometric" else smpl_body
    rotations, rest, joints, translation = posed(body, 256, seed=1, device=device)
    twist = twist_from_rotations(rotations, rest)
    result = inverse_kinematics(joints, twist, rest)
    assert geodesic_distance(result.local_rotations, rotations).max() < 1e-4
    assert (result.joints - joints).norm(dim=-1).max() < 1e-5
    assert (result.translation - translation).abs().max() < 1e-9
    assert not result.degenerate.any()
    # The solution's joints are its own forward kinematics.
    again, _ = forward_kinematics(result.local_rotations, rest, translation=result.translation)
    torch.testing.assert_close(again, result.joints)


def test_twist_extraction_known_answer():
    body = AnthropometricBody()
    rest = body.rest_joints(torch.zeros(1, 4))
    rotations = torch.eye(3, dtype=torch.float64).repeat(1, 24, 1, 1)
    knee, ankle = J("left_knee"), J("left_ankle")
    bone = torch.nn.functional.normalize(rest[0, ankle] - rest[0, knee], dim=0)
    rotations[0, knee] = axis_angle_to_matrix(0.7 * bone)                 # a pure twist of 0.7 rad
    twist = twist_from_rotations(rotations, rest)
    torch.testing.assert_close(twist[0, knee - 1], torch.tensor([np.cos(0.7), np.sin(0.7)], dtype=torch.float64))
    others = twist[0, [j - 1 for j in range(1, 24) if j != knee]]
    torch.testing.assert_close(others, torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand_as(others))
    # A pure swing (about an axis across the bone) has no twist.
    across = torch.linalg.cross(bone, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    rotations[0, knee] = axis_angle_to_matrix(1.1 * torch.nn.functional.normalize(across, dim=0))
    torch.testing.assert_close(twist_from_rotations(rotations, rest)[0, knee - 1],
                               torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_adaptive_ik_beats_naive_ik_on_noisy_targets():
    body = AnthropometricBody()
    rotations, rest, joints, _ = posed(body, 1000, seed=2)
    twist = twist_from_rotations(rotations, rest)
    generator = torch.Generator().manual_seed(3)
    noisy = joints + (torch.rand(joints.shape, generator=generator, dtype=torch.float64) * 2 - 1) * 0.030
    errors = {}
    for adaptive in (True, False):
        result = inverse_kinematics(noisy, twist, rest, adaptive=adaptive)
        errors[adaptive] = (result.joints - joints).norm(dim=-1).mean().item()
    assert errors[True] < 0.75 * errors[False], errors


@pytest.mark.parametrize("adaptive", [True, False])
def test_matches_the_joint_by_joint_reference(adaptive):
    rotations, rest, joints, _ = posed(AnthropometricBody(), 64, seed=4)
    noisy = joints + torch.randn(joints.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 0.02
    twist = twist_from_rotations(rotations, rest)
    result = inverse_kinematics(noisy, twist, rest, adaptive=adaptive)
    local, posed_joints = reference_inverse_kinematics(noisy, twist, rest, adaptive=adaptive)
    torch.testing.assert_close(result.local_rotations, local, atol=1e-9, rtol=0)
    torch.testing.assert_close(result.joints, posed_joints, atol=1e-9, rtol=0)


def degenerate_cases():
    """Targets built from the rest pose (root identity, so each joint is placed at its rest spot)."""
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4))
    twist = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(1, 23, 1)
    hip, knee = J("left_hip"), J("left_knee")
    cases = {}
    behind = rest.clone()
    behind[0, knee] = rest[0, hip] - (rest[0, knee] - rest[0, hip])      # straight behind the rest bone
    cases["antiparallel bone"] = (behind, twist, {hip})
    on_joint = rest.clone()
    on_joint[0, knee] = rest[0, hip]                                       # a zero-length bone
    cases["zero-length bone"] = (on_joint, twist, {hip})
    cases["all joints coincide"] = (torch.zeros_like(rest), twist, {0})
    nan = rest.clone()
    nan[0, knee] = float("nan")
    cases["NaN target"] = (nan, twist, {hip})
    nan_twist = twist.clone()
    nan_twist[0, J("left_elbow") - 1] = float("nan")
    cases["NaN twist"] = (rest, nan_twist, {J("left_elbow")})
    zero_twist = twist.clone()
    zero_twist[0, J("neck") - 1] = 0.0
    cases["zero twist"] = (rest, zero_twist, {J("neck")})
    nan_root = rest.clone()
    nan_root[0, 0] = float("nan")
    cases["NaN root"] = (nan_root, twist, {0})
    return rest, cases


@pytest.mark.parametrize("case", list(degenerate_cases()[1]))
@pytest.mark.parametrize("adaptive", [True, False])
def test_degenerate_input_gives_finite_output_and_a_flag(case, adaptive):
    rest, cases = degenerate_cases()
    targets, twist, flagged = cases[case]
    targets, twist = targets.clone().requires_grad_(), twist.clone().requires_grad_()
    result = inverse_kinematics(targets, twist, rest, adaptive=adaptive)
    assert torch.isfinite(result.local_rotations).all() and torch.isfinite(result.joints).all()
    assert flagged <= set(torch.nonzero(result.degenerate[0]).flatten().tolist()), result.degenerate
    if case == "all joints coincide" and not adaptive:    # every bone aimed along a zero-length target bone
        assert result.degenerate.all()
    # Fallbacks are identity swings: every output is still a rotation.
    torch.testing.assert_close(result.local_rotations.det(), torch.ones(1, 24, dtype=torch.float64))
    (result.local_rotations.sum() + result.joints.sum()).backward()
    assert torch.isfinite(targets.grad).all() and torch.isfinite(twist.grad).all()


def test_well_posed_input_sets_no_flag_and_a_small_one_stays_local():
    rest, cases = degenerate_cases()
    targets, twist, _ = cases["antiparallel bone"]
    result = inverse_kinematics(targets, twist, rest)
    assert set(torch.nonzero(result.degenerate[0]).flatten().tolist()) == {J("left_hip")}


def test_ik_is_differentiable():
    rotations, rest, joints, _ = posed(AnthropometricBody(), 2, seed=6)
    targets = (joints + 0.01 * torch.randn_like(joints)).requires_grad_()
    twist = twist_from_rotations(rotations, rest).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, w: inverse_kinematics(t, w, rest).local_rotations, (targets, twist))


def test_gradient_and_no_gradient_paths_agree():
    rotations, rest, joints, _ = posed(AnthropometricBody(), 16, seed=7)
    noisy = joints + 0.02 * torch.randn(joints.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    twist = twist_from_rotations(rotations, rest)
    with torch.no_grad():
        plain = inverse_kinematics(noisy, twist, rest).local_rotations
    graded = inverse_kinematics(noisy.clone().requires_grad_(), twist, rest).local_rotations
    torch.testing.assert_close(plain, graded.detach(), atol=1e-12, rtol=0)


def test_float32_batch_of_one():
    rotations, rest, joints, _ = posed(AnthropometricBody(), 1, seed=9)
    twist = twist_from_rotations(rotations, rest)
    result = inverse_kinematics(joints.float(), twist.float(), rest.float())
    assert result.local_rotations.dtype == torch.float32
    assert geodesic_distance(result.local_rotations.double(), rotations).max() < 1e-3


def test_kabsch_never_returns_a_reflection():
    from ros2_radar_pose.body.hybrik_ik import _kabsch

    rest = torch.randn(3, 5, 3, dtype=torch.float64)
    mirrored = rest * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)      # best fit is a reflection
    for target in (mirrored, mirrored.clone().requires_grad_()):
        rotation, bad = _kabsch(rest, target, torch.ones(5, dtype=torch.bool), 1e-6)
        torch.testing.assert_close(rotation.det().detach(), torch.ones(5, dtype=torch.float64))
        assert not bad.any()
