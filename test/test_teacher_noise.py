"""The simulated camera teacher's noise model gives the errors it documents."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.data.teacher_noise import LEFT_RIGHT, NO_NOISE, TeacherNoise, teacher_labels

FPS = 20.0


def truth(frames: int, seed: int = 0):
    """A person 3 m in front of the radar, joints spread like a body, random orientations."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0, 0.3, (24, 3))
    joints = np.array([3.0, 0.5, 0.0]) + body + np.zeros((frames, 1, 1))
    quats = Rotation.random(frames * 24, random_state=seed).as_quat().reshape(frames, 24, 4)
    return joints, quats


def test_no_noise_gives_the_truth():
    joints, quats = truth(50)
    positions, rotations, labelled = teacher_labels(joints, quats, FPS, np.random.default_rng(0), NO_NOISE)
    np.testing.assert_allclose(positions, joints, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(rotations * quats, axis=-1)), 1.0, atol=1e-6)
    assert labelled.all()


def test_root_error_lies_mostly_along_the_viewing_ray():
    joints, quats = truth(40_000)
    noise = TeacherNoise(joint_std=0.0, rotation_std_deg=0.0, dropout_rate=0.0, swap_rate=0.0)
    positions, _, _ = teacher_labels(joints, quats, FPS, np.random.default_rng(1), noise)
    error = (positions - joints).mean(axis=1)                        # the same for every joint
    ray = joints[0, 0] / np.linalg.norm(joints[0, 0])
    along = error @ ray
    across = np.linalg.norm(error - along[:, None] * ray, axis=1) / math.sqrt(2)
    assert np.std(along) == pytest.approx(noise.root_depth_std, rel=0.15)
    assert np.sqrt(np.mean(across ** 2)) == pytest.approx(noise.root_lateral_std, rel=0.15)
    # correlated over root_correlation_s: the lag-1 autocorrelation is exp(-1 / (tau * fps))
    lag1 = np.corrcoef(along[1:], along[:-1])[0, 1]
    assert lag1 == pytest.approx(math.exp(-1 / (noise.root_correlation_s * FPS)), abs=0.02)


def test_limbs_are_noisier_than_the_trunk():
    joints, quats = truth(20_000)
    noise = TeacherNoise(root_depth_std=0.0, root_lateral_std=0.0, dropout_rate=0.0, swap_rate=0.0)
    positions, _, _ = teacher_labels(joints, quats, FPS, np.random.default_rng(2), noise)
    spread = (positions - joints).std(axis=0).mean(axis=1)          # (24,)
    assert spread[SMPL_24.index("spine2")] == pytest.approx(noise.joint_std, rel=0.15)
    assert spread[SMPL_24.index("left_wrist")] == pytest.approx(2 * noise.joint_std, rel=0.15)


def test_dropouts_and_swaps_happen_at_their_rates():
    joints, quats = truth(40_000)
    noise = TeacherNoise(root_depth_std=0, root_lateral_std=0, joint_std=0, rotation_std_deg=0)
    positions, _, labelled = teacher_labels(joints, quats, FPS, np.random.default_rng(3), noise)
    # runs start at dropout_rate per frame and last dropout_mean_s on average: ~5 % of frames
    assert 0.03 < 1 - labelled.mean() < 0.07
    swapped = np.all(np.isclose(positions, joints[:, LEFT_RIGHT], atol=1e-5), axis=(1, 2)) & ~np.all(
        np.isclose(positions, joints, atol=1e-5), axis=(1, 2))
    assert 0.006 < swapped.mean() < 0.02                             # ~0.002 x 6 frames = 1.2 %


def test_rotation_noise_tilts_by_the_documented_angle():
    joints, quats = truth(5_000)
    noise = TeacherNoise(root_depth_std=0, root_lateral_std=0, joint_std=0, dropout_rate=0, swap_rate=0)
    _, rotations, _ = teacher_labels(joints, quats, FPS, np.random.default_rng(4), noise)
    np.testing.assert_allclose(np.linalg.norm(rotations, axis=-1), 1.0, atol=1e-5)
    angles = (Rotation.from_quat(rotations.reshape(-1, 4)) * Rotation.from_quat(quats.reshape(-1, 4)).inv()).magnitude()
    assert np.sqrt(np.mean(angles ** 2)) == pytest.approx(math.radians(noise.rotation_std_deg), rel=0.15)


def test_a_seed_gives_the_same_labels():
    joints, quats = truth(200)
    first = teacher_labels(joints, quats, FPS, np.random.default_rng(7))
    again = teacher_labels(joints, quats, FPS, np.random.default_rng(7))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        TeacherNoise(joint_std=-0.1)
    with pytest.raises(ValueError, match="probabilities"):
        TeacherNoise(dropout_rate=2.0)
