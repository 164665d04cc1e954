"""Physics refinement (physics/): the humanoid means what SMPL means, standing still stays still,
the floor holds, planted feet stay planted, bad targets reset instead of crashing, and the
plausibility metrics give known answers."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from bench import physics as physics_bench
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.data.motions import Placement, make_motion
from ros2_radar_pose.physics.contacts import ContactConfig, ContactDetector
from ros2_radar_pose.physics.filters import OneEuroConfig, OneEuroFilter
from ros2_radar_pose.physics.humanoid import ACTUATED, RIGID, BodyShape, Humanoid, humanoid_urdf
from ros2_radar_pose.physics.metrics import plausibility, sole_depth
from ros2_radar_pose.physics.tracker import FloorFrame, PhysicsTracker, TrackerConfig

BODY = AnthropometricBody()
FPS = 20.0
FLOOR = FloorFrame()                 # radar 1 m above the floor, level


@pytest.fixture(scope="module")
def shape():
    return BodyShape.of(BODY)


@pytest.fixture(scope="module")
def standing(shape):
    """A standing pose, 3 m in front of the radar: floor-frame positions (24, 3), rotations (24, 3, 3)."""
    motion = make_motion("idle", BODY, fps=FPS, seed=0, start=Placement.facing_sensor(3.0, 0.0))
    with torch.no_grad():
        pose = BODY(torch.zeros(1, 4, dtype=torch.float64), torch.as_tensor(motion.local_rotations[:1]).double(),
                    torch.as_tensor(motion.translation[:1]).double())
    return pose.joints[0, :24].numpy(), pose.global_rotations[0].numpy()


def run(shape, positions, rotations, config=None, stamps=None):
    """Track floor-frame sequences (T, 24, 3), (T, 24, 3, 3); floor-frame output and the frames."""
    radar_positions, radar_rotations = FLOOR.from_floor(positions, rotations)
    stamps = np.arange(len(positions)) / FPS if stamps is None else stamps
    with PhysicsTracker(shape, config, FLOOR) as tracker:
        frames = [tracker.step(p, r, s) for p, r, s in zip(radar_positions, radar_rotations, stamps)]
    out = np.stack([f.positions for f in frames])
    return FLOOR.to_floor(out, np.stack([f.rotations for f in frames]))[0], frames


def test_the_urdf_has_a_link_per_smpl_joint_and_the_body_mass(shape):
    urdf = humanoid_urdf(shape)
    assert urdf.count("<link ") == 24 and urdf.count('type="spherical"') == 23 - len(RIGID)
    assert urdf.count('type="fixed"') == len(RIGID)
    masses = [float(x.split('"')[1]) for x in urdf.split("<mass value=")[1:]]
    assert sum(masses) == pytest.approx(shape.mass, rel=1e-4)
    heavier = BodyShape.of(BODY, body_mass=90.0)
    assert heavier.mass == pytest.approx(90.0) and shape.mass == pytest.approx(23 * shape.height ** 2, rel=0.05)


def test_a_pose_in_pybullet_is_the_body_models_pose(shape):
    """Spherical joints take SMPL's local rotations: the links land where forward kinematics puts the joints."""
    import pybullet

    motion = make_motion("front_lunge", BODY, fps=FPS, seed=0)
    local = motion.local_rotations[len(motion) // 2]
    joints, global_rotations = forward_kinematics(torch.as_tensor(local)[None].double(),
                                                  torch.as_tensor(shape.rest)[None], HYBRIK_29.parents)
    client = pybullet.connect(pybullet.DIRECT)
    try:
        humanoid = Humanoid(client, shape)
        humanoid.reset(joints[0, 0].numpy(), Rotation.from_matrix(local[0]).as_quat(),
                       Rotation.from_matrix(local[1:]).as_quat())
        positions, quaternions = humanoid.joint_state()
    finally:
        pybullet.disconnect(client)
    np.testing.assert_allclose(positions, joints[0, :24].numpy(), atol=1e-5)
    angle = (Rotation.from_quat(quaternions).inv() * Rotation.from_matrix(global_rotations[0].numpy())).magnitude()
    assert angle[[0, *ACTUATED]].max() < 1e-4
    rigid = Rotation.from_quat(quaternions[list(RIGID)]).inv() * Rotation.from_quat(
        quaternions[[HYBRIK_29.parents[j] for j in RIGID]])
    assert rigid.magnitude().max() < 1e-6                           # toes and hands turn with their parents


def test_standing_still_stays_still_for_ten_seconds(shape, standing):
    positions, rotations = standing
    frames = int(10 * FPS)
    out, tracked = run(shape, np.repeat(positions[None], frames, 0), np.repeat(rotations[None], frames, 0))
    assert tracked[0].reset and not any(f.reset for f in tracked[1:])
    drift = np.linalg.norm(out[-1] - out[20], axis=-1)
    assert drift.max() < 0.01, f"drifted {drift.max() * 1000:.1f} mm"
    assert np.abs(out[-1] - positions).max() < 0.03
    assert all(f.contacts.all() for f in tracked[5:])
    depth = sole_depth(out, shape.clearance)
    assert depth.min() > -0.003 and np.abs(depth[20:]).max() < 0.005


def knee_angle(positions: np.ndarray, side: int) -> np.ndarray:
    """(T,) degrees between thigh and shank of one leg (0: straight), positions (T, 24, 3)."""
    thigh = positions[:, 4 + side] - positions[:, 1 + side]
    shank = positions[:, 7 + side] - positions[:, 4 + side]
    cos = (thigh * shank).sum(-1) / np.linalg.norm(thigh, axis=-1) / np.linalg.norm(shank, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@pytest.mark.parametrize("bend_knees", [0.0, 0.5, 1.0])
def test_a_target_below_the_floor_comes_out_on_the_floor(shape, standing, bend_knees):
    # The estimate's 12 cm under the floor is shared: the root rises by (1 - bend_knees) of it and
    # the planted legs bend for the rest.
    positions, rotations = standing
    sunk = positions - [0.0, 0.0, 0.12]
    frames = 60
    out, _ = run(shape, np.repeat(sunk[None], frames, 0), np.repeat(rotations[None], frames, 0),
                 TrackerConfig(bend_knees=bend_knees))
    depth = sole_depth(out, shape.clearance)
    assert depth.min() > -0.005, f"{-depth.min() * 1000:.1f} mm under the floor"
    assert np.abs(depth[10:]).max() < 0.01                           # on it, not floating above
    raised = out[20:, 0, 2] - sunk[0, 2]
    assert np.abs(raised - (1 - bend_knees) * 0.12).max() < 0.025, raised
    bent = knee_angle(out[20:], 0) - knee_angle(positions[None], 0)
    assert (bent > 15.0).all() if bend_knees else (np.abs(bent) < 5.0).all(), bent


def test_a_noisy_estimate_with_its_feet_under_the_floor_does_not_push_the_body_into_it(shape):
    # bench/physics.py's sit, noise draw 2: the estimate starts with both soles 5-13 cm under the
    # floor and one foot higher than the other; following its root (floor_root off) put a sole
    # 6.9 mm into the floor in the frames after the reset.
    body, floor = AnthropometricBody(), FloorFrame()
    truth, contacts, betas, positions, rotations = physics_bench.noisy_sequence(
        "sit", body, floor, np.random.default_rng([2, physics_bench.MOTIONS.index("sit")]))
    assert sole_depth(floor.to_floor(positions, rotations)[0][:10], shape.clearance).min() < -0.1
    estimate = floor.to_floor(positions[:30], rotations[:30])
    out, _ = run(BodyShape.of(body, betas), *estimate)
    depth = sole_depth(out, shape.clearance)
    assert depth.min() > -0.005, f"{-depth.min() * 1000:.1f} mm under the floor"


def test_planted_feet_that_slide_in_the_target_stay_planted(shape, standing):
    positions, rotations = standing
    t = np.arange(int(4 * FPS)) / FPS
    slide = 0.06 * np.sin(2 * np.pi * 0.8 * t)                     # the whole estimate sways 6 cm sideways
    target = np.repeat(positions[None], len(t), 0)
    target[..., 1] += slide[:, None]
    out, _ = run(shape, target, np.repeat(rotations[None], len(t), 0))
    contacts = np.ones((len(t), 2), dtype=bool)
    before = plausibility(target, shape.clearance, contacts)
    after = plausibility(out, shape.clearance, contacts)
    assert before.skating_mm > 5
    assert after.skating_mm < 0.2 * before.skating_mm, (before.skating_mm, after.skating_mm)   # the -80 % target
    assert np.abs(out[20:, 0, 1] - target[20:, 0, 1]).mean() < 0.03   # the pelvis still follows


def test_a_nan_target_holds_then_tracking_goes_on(shape, standing):
    positions, rotations = standing
    radar_positions, radar_rotations = FLOOR.from_floor(positions, rotations)
    nan = np.full_like(radar_positions, np.nan)
    with PhysicsTracker(shape, None, FLOOR) as tracker:
        first = tracker.step(nan, radar_rotations, 0.0)
        assert first.reset and np.isnan(first.positions).all()
        frames = [tracker.step(radar_positions, radar_rotations, 0.05 * k) for k in range(1, 11)]
        held = tracker.step(nan, radar_rotations, 0.55)
        assert np.isfinite(held.positions).all()
        np.testing.assert_allclose(held.positions, frames[-1].positions, atol=1e-9)
        after = tracker.step(radar_positions, radar_rotations, 0.6)
        assert np.isfinite(after.positions).all() and not after.reset


def test_a_jump_or_a_gap_resets_to_the_target(shape, standing):
    positions, rotations = standing
    radar_positions, radar_rotations = FLOOR.from_floor(positions, rotations)
    with PhysicsTracker(shape, None, FLOOR) as tracker:
        assert tracker.step(radar_positions, radar_rotations, 0.0).reset
        assert not tracker.step(radar_positions, radar_rotations, 0.05).reset
        moved = radar_positions + [1.5, 0.0, 0.0]
        jumped = tracker.step(moved, radar_rotations, 0.1)
        assert jumped.reset and np.abs(jumped.positions[0] - moved[0]).max() < 0.02
        assert tracker.step(moved, radar_rotations, 5.0).reset            # 4.9 s without a frame


def test_a_falling_target_does_not_explode(shape, standing):
    positions, rotations = standing
    t = np.arange(40) / FPS
    drop = np.clip(t - 0.5, 0.0, None) * 2.0                          # the root sinks 2 m/s after 0.5 s
    target = np.repeat(positions[None], len(t), 0)
    target[..., 2] -= drop[:, None].clip(max=1.2)
    out, frames = run(shape, target, np.repeat(rotations[None], len(t), 0), TrackerConfig(reset_jump=10.0))
    assert np.isfinite(out).all()
    assert sole_depth(out, shape.clearance).min() > -0.01
    assert (out[..., 2] > -0.05).all(), "a joint went through the floor"
    speed = np.linalg.norm(np.diff(out, axis=0), axis=-1).max() * FPS
    assert speed < 10.0, f"a joint moved at {speed:.1f} m/s"


def test_a_twist_that_flips_every_frame_does_not_throw_the_body(shape, standing):
    # A radar student's spine3 twist can flip by 180 degrees from frame to frame (its three children
    # are nearly in line); tracked as it comes, the whipping chest throws the body off its feet.
    positions, rotations = standing
    target = np.repeat(rotations[None], 60, 0)
    axis = positions[12] - positions[9]                                  # spine3 -> neck
    flip = Rotation.from_rotvec(np.pi * axis / np.linalg.norm(axis)).as_matrix()
    target[1::2, 9] = flip @ target[1::2, 9]
    still = np.repeat(positions[None], 60, 0)
    out, _ = run(shape, still, target)
    assert np.abs(out[:, 0] - positions[0]).max() < 0.02, "the pelvis was thrown"
    assert sole_depth(out, shape.clearance).max() < 0.03, "a foot left the floor"
    thrown, _ = run(shape, still, target, TrackerConfig(max_joint_speed=1e3))     # without the bound
    assert np.abs(thrown[:, 0] - positions[0]).max() > 0.05


def test_contact_detection_has_hysteresis():
    config = ContactConfig(down_height=0.05, up_height=0.10, down_speed=0.5, up_speed=1.0, smoothing_s=0.0,
                           release_distance=0.2)
    detector = ContactDetector(config)
    still = np.zeros((2, 2))
    assert detector.update(np.array([0.0, 0.2]), still, 0.0).tolist() == [True, False]
    assert detector.update(np.array([0.08, 0.08]), still, 0.05).tolist() == [True, False]   # between: unchanged
    assert detector.update(np.array([0.12, 0.02]), still, 0.10).tolist() == [False, True]
    fast = np.array([[0.1, 0.0], [0.0, 0.0]])                                              # 2 m/s
    assert detector.update(np.array([0.0, 0.0]), fast, 0.15).tolist() == [False, True]
    far = np.array([[0.1, 0.0], [0.25, 0.0]])                                              # left where it landed
    assert detector.update(np.array([0.0, 0.0]), far, 0.20).tolist() == [True, False]
    # a foot still moving at 0.8 m/s lands only where the simulated foot touches the floor
    moving = far + [[0.0, 0.0], [0.04, 0.0]]
    assert detector.update(np.array([0.0, 0.0]), moving, 0.25, np.array([False, False])).tolist() == [True, False]
    moving = moving + [[0.0, 0.0], [0.04, 0.0]]
    assert detector.update(np.array([0.0, 0.0]), moving, 0.30, np.array([False, True])).tolist() == [True, True]


def test_the_one_euro_filter_smooths_a_still_joint_and_follows_a_fast_one():
    rng = np.random.default_rng(0)
    still = rng.normal(0.0, 0.01, (200, 1, 3))
    smoothed = OneEuroFilter()
    out = np.stack([smoothed(frame, 0.05) for frame in still])
    assert out[20:].std() < 0.5 * still.std()
    t = np.arange(40) * 0.05
    moving = np.zeros((40, 1, 3))
    moving[:, 0, 0] = 4.0 * t                                            # a swinging foot, 4 m/s
    fast, slow = OneEuroFilter(), OneEuroFilter(OneEuroConfig(beta=0.0))
    lag_fast = moving[-1, 0, 0] - [fast(frame, 0.05) for frame in moving][-1][0, 0]
    lag_slow = moving[-1, 0, 0] - [slow(frame, 0.05) for frame in moving][-1][0, 0]
    assert 0 <= lag_fast < 0.3 * lag_slow
    with pytest.raises(ValueError, match="cutoffs"):
        OneEuroConfig(min_cutoff_hz=0.0)


def test_plausibility_metrics_give_known_answers(shape):
    frames = 20
    clearance = shape.clearance
    base = np.zeros((frames, 24, 3))
    base[:, [7, 8], 2] = clearance[:, 0]           # ankles and balls at their standing heights: soles on the floor
    base[:, [10, 11], 2] = clearance[:, 1]
    sliding = base.copy()
    sliding[:, 10, 0] = np.arange(frames) * 0.004  # the left ball slides 4 mm per frame
    contacts = np.ones((frames, 2), dtype=bool)
    assert plausibility(sliding, clearance, contacts).skating_mm == pytest.approx(2.0)   # mean over both feet
    sunk = base - [0.0, 0.0, 0.01]
    scores = plausibility(sunk, clearance, contacts, target=base, truth=base)
    assert scores.penetration_max_mm == pytest.approx(10.0) and scores.penetration_share == 1.0
    assert scores.mpjpe_target_mm == pytest.approx(10.0) and scores.mpjpe_truth_mm == pytest.approx(10.0)
    shaking = base.copy()
    shaking[::2, :, 0] += 0.001                    # +-: a second difference of 2 mm every frame
    assert plausibility(shaking, clearance, contacts).jitter_mm == pytest.approx(2.0)
    assert plausibility(base, clearance, contacts).jitter_mm == 0.0
    with pytest.raises(ValueError, match="SMPL-24"):
        plausibility(base[:, :19], clearance)


def test_bad_settings_are_refused(shape):
    with pytest.raises(ValueError, match="physics_hz"):
        TrackerConfig(physics_hz=0.0)
    with pytest.raises(ValueError, match="contact_erp"):
        TrackerConfig(contact_erp=1.5)
    with pytest.raises(ValueError, match="bend_knees"):
        TrackerConfig(bend_knees=-0.1)
    with pytest.raises(ValueError, match="contact thresholds"):
        ContactConfig(down_height=0.2, up_height=0.1)
    with pytest.raises(ValueError, match="rest"):
        BodyShape(shape.rest[:24], shape.masses, shape.radii)
