"""Procedural motions (data/motions.py and friends): planted feet that stay put on the floor, joint
limits, smoothness, known answers for each motion's parameters, seeds, frame-rate independence,
programs that stay in their area, subjects, and both body models."""
import math
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from smpl_synthetic import synthetic_smpl_arrays

from ros2_radar_pose.body.joint_sets import HYBRIK_29, SMPL_24
from ros2_radar_pose.body.limits import EULER_LIMITS
from ros2_radar_pose.body.models import AnthropometricBody, SMPLBody
from ros2_radar_pose.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ros2_radar_pose.data.curves import ease, ease_integral, smooth_below
from ros2_radar_pose.data.leg_ik import LegChain, rotation_x
from ros2_radar_pose.data.motions import (
    MOTIONS,
    Placement,
    make_motion,
    max_walking_speed,
    render,
    squat,
    walk,
)
from ros2_radar_pose.data.programs import AREA, make_program, random_program
from ros2_radar_pose.data.subjects import Subject, random_subject
from ros2_radar_pose.data.tracks import soft_clamp, soft_min

J = HYBRIK_29.index
FOOT_JOINTS = tuple((J(f"{side}_ankle"), J(f"{side}_foot"), J(f"{side}_big_toe")) for side in ("left", "right"))
BODY = AnthropometricBody()
FPS = 30.0
MAX_JOINT_SPEED = 8.0          # m/s: a swinging foot peaks near 5.5 m/s at a brisk walk
MAX_ANGULAR_SPEED = 15.0       # rad/s per joint, relative to its parent
MAX_ANGULAR_ACCELERATION = 600.0   # rad/s^2: push-off and early swing of a brisk walk reach about 300


@pytest.fixture(scope="module")
def motions():
    return {name: make_motion(name, BODY, fps=FPS, seed=0) for name in MOTIONS}


@pytest.fixture(scope="module")
def smpl_body(tmp_path_factory):
    path = tmp_path_factory.mktemp("smpl") / "smpl_neutral.npz"
    np.savez(path, **synthetic_smpl_arrays())
    return SMPLBody(path)


def contact_spans(planted: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], planted.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def foot_measures(motion, joints) -> tuple[float, float]:
    """Largest slide (m) of a planted foot's contact points over any contact span, and largest
    height of a planted foot's lowest joint over the floor. The toe tip stays put through the
    whole contact (the heel may rise, then the foot rolls over the toes); the ball stays put while
    it is down."""
    slide, height = 0.0, 0.0
    for side in (0, 1):
        _, ball_joint, toe_joint = FOOT_JOINTS[side]
        for a, b in contact_spans(motion.contacts[:, side]):
            toe = joints[a:b, toe_joint]
            slide = max(slide, np.linalg.norm(toe - toe[0], axis=1).max())
            ball = joints[a:b, ball_joint]
            down = ball[ball[:, 2] <= ball[:, 2].min() + 0.002]
            slide = max(slide, np.linalg.norm(down - down[0], axis=1).max())
            height = max(height, np.abs(joints[a:b][:, FOOT_JOINTS[side], 2].min(axis=1)).max())
    return float(slide), float(height)


def euler_outside_limits(local_rotations: np.ndarray) -> np.ndarray:
    """(T, 24, 3) how far each joint's intrinsic XYZ Euler angles lie outside EULER_LIMITS (rad, 0
    inside), taking whichever of the two Euler solutions of each rotation lies closer."""
    with warnings.catch_warnings():
        # At gimbal lock SciPy, as roma did, sets the third angle to 0 (only the first and third
        # together are determined) and warns: the reading is still a valid one.
        warnings.filterwarnings("ignore", "Gimbal lock detected", UserWarning)
        first = Rotation.from_matrix(local_rotations.reshape(-1, 3, 3)).as_euler("XYZ")
    first = first.reshape(local_rotations.shape[:-1])
    second = np.stack([first[..., 0] + np.pi, np.pi - first[..., 1], first[..., 2] + np.pi], axis=-1)
    second = (second + np.pi) % (2 * np.pi) - np.pi
    low, high = EULER_LIMITS[..., 0].numpy(), EULER_LIMITS[..., 1].numpy()
    outside = [np.maximum(np.maximum(low - e, e - high), 0.0) for e in (first, second)]
    better = outside[1].max(-1, keepdims=True) < outside[0].max(-1, keepdims=True)
    return np.where(better, outside[1], outside[0])


def angular_motion(motion) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and joint (but the root): angular speed (T-1, 23) and acceleration (T-2, 23)."""
    rotations = torch.as_tensor(motion.local_rotations[:, 1:], dtype=torch.float64)
    velocity = matrix_to_axis_angle(rotations[1:] @ rotations[:-1].transpose(-1, -2)).numpy() * motion.fps
    return np.linalg.norm(velocity, axis=-1), np.linalg.norm(np.diff(velocity, axis=0), axis=-1) * motion.fps


def heading_of(motion) -> np.ndarray:
    """(T,) the body's facing direction about world z, from the root rotation, unwrapped."""
    forward = motion.local_rotations[:, 0, :, 2]          # the canonical forward axis in the world
    return np.unwrap(np.arctan2(forward[:, 1], forward[:, 0]))


# --- every motion ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MOTIONS))
def test_planted_feet_stay_put_on_the_floor(motions, name):
    motion = motions[name]
    joints = motion.joints(BODY)
    slide, height = foot_measures(motion, joints)
    assert slide < 0.01, f"{name}: a planted foot slid {slide * 1000:.1f} mm"
    assert height < 0.01, f"{name}: a planted foot's lowest joint is {height * 1000:.1f} mm off the floor"
    assert joints[..., 2].min() > -0.01, f"{name}: a joint goes {-joints[..., 2].min() * 1000:.1f} mm below the floor"
    assert motion.contacts[0].all() and motion.contacts[-1].all(), "motions start and end standing"


@pytest.mark.parametrize("name", list(MOTIONS))
def test_rotations_are_rotations_within_joint_limits(motions, name):
    rotations = motions[name].local_rotations.astype(np.float64)
    assert np.allclose(rotations @ np.swapaxes(rotations, -1, -2), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(rotations), 1.0, atol=1e-5)
    outside = euler_outside_limits(rotations)[:, 1:]          # the root (the body's orientation) is free
    worst = np.unravel_index(outside.argmax(), outside.shape)
    assert outside.max() < 0.01, (f"{name}: {SMPL_24.names[worst[1] + 1]} {'xyz'[worst[2]]} is "
                                  f"{outside.max():.3f} rad outside its limits at t = {worst[0] / FPS:.2f} s")


@pytest.mark.parametrize("name", list(MOTIONS))
def test_motion_is_smooth_and_starts_and_ends_still(motions, name):
    motion = motions[name]
    joints = motion.joints(BODY)
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * motion.fps
    assert speed.max() < MAX_JOINT_SPEED
    assert speed[0].max() < 0.02 and speed[-1].max() < 0.02, "a motion begins and ends at rest"
    angular_speed, angular_acceleration = angular_motion(motion)
    assert angular_speed.max() < MAX_ANGULAR_SPEED
    assert angular_acceleration.max() < MAX_ANGULAR_ACCELERATION


@pytest.mark.parametrize("name", list(MOTIONS))
def test_same_seed_same_motion_at_any_frame_rate(motions, name):
    again = make_motion(name, BODY, fps=FPS, seed=0)
    assert np.array_equal(again.local_rotations, motions[name].local_rotations)
    assert np.array_equal(again.translation, motions[name].translation)
    slow = make_motion(name, BODY, fps=FPS / 3, seed=0)
    assert len(slow) == (len(motions[name]) - 1) // 3 + 1
    assert np.allclose(slow.joints(BODY), motions[name].joints(BODY)[::3], atol=1e-5)
    assert np.array_equal(slow.contacts, motions[name].contacts[::3])


@pytest.mark.parametrize("name", ["idle", "walk", "arm_raise", "wave", "squat"])
def test_different_seeds_perform_differently(motions, name):
    other = make_motion(name, BODY, fps=FPS, seed=1)
    frames = min(len(other), len(motions[name]))
    assert np.abs(other.joints(BODY)[:frames] - motions[name].joints(BODY)[:frames]).max() > 0.01


def test_motion_layout(motions):
    motion = motions["walk"]
    n = len(motion)
    assert motion.local_rotations.shape == (n, 24, 3, 3) and motion.local_rotations.dtype == np.float32
    assert motion.translation.shape == (n, 3) and motion.translation.dtype == np.float32
    assert motion.contacts.shape == (n, 2) and motion.contacts.dtype == bool
    assert motion.betas.shape == (4,) and motion.betas.dtype == np.float32
    assert motion.labels.shape == (n,) and set(motion.labels) == {"walk"}
    assert motion.duration == pytest.approx((n - 1) / FPS) and motion.times[-1] == pytest.approx(motion.duration)
    # The translation is the SMPL one: the pelvis joint lands at the world pelvis.
    assert np.allclose(motion.joints(BODY)[:, 0], motion.pelvis, atol=1e-5)
    with pytest.raises(ValueError, match="shape coefficients"):
        motion.joints(type("TenBetas", (AnthropometricBody,), {"num_betas": 10})())


# --- known answers per motion ---------------------------------------------------------------


@pytest.mark.parametrize("direction", ["towards", "away"])
def test_walk_speed_and_direction(direction):
    subject = Subject.of(BODY)
    start = Placement(3.8, 1.0, 0.0) if direction == "towards" else Placement(1.2, -0.3, 0.0)
    segment = walk(subject, start, seed=3, speed=1.0, distance=2.4, direction=direction)
    motion = segment.motion(FPS)
    cruise = (motion.times >= segment.params["cruise_start"]) & (motion.times <= segment.params["cruise_end"])
    t, pelvis = motion.times[cruise], motion.pelvis[cruise, :2].astype(np.float64)
    assert len(t) > FPS / 2
    speed = np.linalg.norm(pelvis[-1] - pelvis[0]) / (t[-1] - t[0])
    assert speed == pytest.approx(1.0, rel=0.1)
    range_ = np.linalg.norm(motion.pelvis[:, :2], axis=1)
    change = range_[-1] - range_[0]
    assert change == pytest.approx(-2.4 if direction == "towards" else 2.4, abs=0.05)
    assert np.linalg.norm(motion.pelvis[-1, :2] - [segment.end.x, segment.end.y]) < 1e-3


def test_walk_along_a_curve_turns_by_the_asked_angle():
    segment = walk(Subject.of(BODY), Placement(2.0, 0.0, 0.0), seed=1, speed=0.9, distance=3.0, turn=1.0)
    motion = segment.motion(FPS)
    heading = heading_of(motion)
    assert heading[-1] - heading[0] == pytest.approx(1.0, abs=0.03)
    path = np.linalg.norm(np.diff(motion.pelvis[:, :2], axis=0), axis=1).sum()
    assert path == pytest.approx(3.0, rel=0.05)          # the pelvis sways a little on top of the path


def test_faster_walking_takes_longer_steps_more_often():
    subject = Subject.of(BODY)
    slow, fast = (walk(subject, seed=0, speed=v, distance=6.0) for v in (0.7, max_walking_speed(subject)))
    assert fast.params["stride"] > slow.params["stride"] and fast.params["cadence"] > slow.params["cadence"]
    for segment in (slow, fast):
        motion = segment.motion(FPS)
        landings = [a for side in (0, 1) for a, _ in contact_spans(motion.contacts[:, side]) if a > 0]
        cruise = [t for t in motion.times[landings]
                  if segment.params["cruise_start"] < t < segment.params["cruise_end"]]
        assert len(cruise) / (segment.params["cruise_end"] - segment.params["cruise_start"]) == pytest.approx(
            segment.params["cadence"], rel=0.25)


def test_walking_pelvis_leans_over_the_planted_foot():
    motion = walk(Subject.of(BODY), Placement(0.0, 0.0, 0.0), seed=2, speed=0.8, distance=4.0).motion(FPS)
    single = motion.contacts[:, 0] != motion.contacts[:, 1]
    lateral = motion.pelvis[:, 1]                       # walking along +x: left is +y
    assert lateral[single & motion.contacts[:, 0]].mean() > lateral[single & motion.contacts[:, 1]].mean() + 0.01


@pytest.mark.parametrize("angle", [math.pi / 2, -2.5])
def test_turn_on_the_spot(angle):
    motion = make_motion("turn", BODY, fps=FPS, seed=0, start=Placement(2.0, 0.5, 1.0), angle=angle)
    heading = heading_of(motion)
    assert heading[-1] - heading[0] == pytest.approx(angle, abs=0.01)
    assert np.linalg.norm(motion.pelvis[:, :2] - [2.0, 0.5], axis=1).max() < 0.03
    assert not motion.contacts.all(axis=1).all(), "it steps"


def test_squat_lowers_the_pelvis_by_its_depth():
    motion = make_motion("squat", BODY, fps=FPS, seed=0, depth=0.32, repetitions=2)
    drop = motion.pelvis[0, 2] - motion.pelvis[:, 2]
    assert drop.max() == pytest.approx(0.32, abs=0.01)
    assert motion.contacts.all(), "the feet stay planted"
    assert (np.diff((drop > 0.3).astype(int)) == 1).sum() == 2, "two repetitions"


def test_sit_puts_the_hips_at_chair_height():
    motion = make_motion("sit", BODY, fps=FPS, seed=0, chair_height=0.46, seated_time=1.5)
    hips = motion.joints(BODY)[:, [J("left_hip"), J("right_hip")], 2].mean(axis=1)
    seated = hips < 0.47
    assert hips.min() == pytest.approx(0.46, abs=0.01)
    assert seated.sum() / FPS > 1.5 and motion.contacts.all()


@pytest.mark.parametrize("side", ["left", "right"])
def test_wave_raises_the_hand_above_the_shoulder(side):
    motion = make_motion("wave", BODY, fps=FPS, seed=0, side=side, waving_time=2.0)
    joints = motion.joints(BODY)
    hand = joints[:, J(f"{side}_middle_tip"), 2] - joints[:, J(f"{side}_shoulder"), 2]
    other = "right" if side == "left" else "left"
    assert (hand > 0.2).sum() / FPS > 2.0
    assert (joints[:, J(f"{other}_middle_tip"), 2] < joints[:, J(f"{other}_shoulder"), 2]).all()
    # The forearm swings side to side while up.
    waving = hand > 0.2
    sideways = joints[waving, J(f"{side}_wrist"), 1] - joints[waving, J(f"{side}_elbow"), 1]
    assert np.ptp(sideways) > 0.1


@pytest.mark.parametrize("plane", ["front", "side"])
def test_arm_raise_reaches_its_elevation(plane):
    motion = make_motion("arm_raise", BODY, fps=FPS, seed=0, side="left", plane=plane, angle=math.pi / 2)
    joints = motion.joints(BODY)
    arm = joints[:, J("left_wrist")] - joints[:, J("left_shoulder")]
    elevation = np.arccos(np.clip(-arm[:, 2] / np.linalg.norm(arm, axis=1), -1, 1))   # 0 hanging, pi/2 level
    top = elevation.argmax()
    assert elevation[top] == pytest.approx(math.pi / 2, abs=0.12)
    forward_axis = np.array([math.cos(math.pi), math.sin(math.pi)])                    # the default start faces -x
    along = arm[top, :2] @ forward_axis / np.linalg.norm(arm[top])
    assert along > 0.9 if plane == "front" else abs(along) < 0.3


@pytest.mark.parametrize("direction", ["front", "side", "back"])
def test_leg_extension_lifts_one_leg(direction):
    motion = make_motion("leg_extension", BODY, fps=FPS, seed=0, side="right", direction=direction, angle=0.35)
    joints = motion.joints(BODY)
    assert motion.contacts[:, 0].all(), "the left foot bears the weight throughout"
    lifted = ~motion.contacts[:, 1]
    assert lifted.sum() / FPS > 1.5
    ankle = joints[:, J("right_ankle")] - joints[0, J("right_ankle")]
    heading = np.array([-1.0, 0.0])                                                    # facing -x
    leftward = np.array([0.0, -1.0])
    moved = {"front": ankle[:, :2] @ heading, "back": -ankle[:, :2] @ heading, "side": -(ankle[:, :2] @ leftward)}
    assert moved[direction].max() > 0.2
    assert ankle[:, 2].max() > 0.02


@pytest.mark.parametrize("kind", ["front", "side"])
def test_lunges_step_out_and_down(kind):
    length, depth = (0.7, 0.2) if kind == "front" else (0.45, 0.15)
    motion = make_motion(f"{kind}_lunge", BODY, fps=FPS, seed=0, side="left", length=length, depth=depth,
                         start=Placement(2.0, 0.0, 0.0))
    joints = motion.joints(BODY)
    step = joints[:, J("left_foot"), :2] - joints[0, J("left_foot"), :2]
    out = step[:, 0] if kind == "front" else step[:, 1]                                # facing +x: left is +y
    assert out.max() == pytest.approx(length, abs=0.01)
    assert np.abs(step[-1]).max() < 1e-4, "the foot comes back to where it stood"
    assert motion.contacts[:, 1].all(), "the other foot stays planted"
    assert motion.pelvis[0, 2] - motion.pelvis[:, 2].min() >= depth - 0.01


# --- building blocks ------------------------------------------------------------------------


@given(st.floats(0.0, 1.2), st.floats(0.0, 2.4))
def test_leg_ik_reaches_its_target(distance_fraction, bend):
    # A slightly bent rest leg (as SMPL's are), the ankle somewhere reachable around the hip.
    chain = LegChain(np.array([0.004, -0.37, 0.012]), np.array([0.006, -0.42, -0.03]))
    shortest = abs(np.linalg.norm(chain.thigh) - np.linalg.norm(chain.shank)) + 0.1
    distance = shortest + min(distance_fraction, 1.0) * (chain.reach * 0.999 - shortest)
    angle = chain.knee_angle(np.array([distance]))
    assert angle[0] >= 0
    bent = chain.thigh + (rotation_x(angle) @ chain.shank)[0]
    assert np.linalg.norm(bent) == pytest.approx(distance, abs=1e-9)
    pelvis = axis_angle_to_matrix(torch.tensor([[0.1, 0.3, -0.2]], dtype=torch.float64)).numpy()
    direction = np.array([math.sin(bend), 0.1, -math.cos(bend)])
    target = (distance * direction / np.linalg.norm(direction))[None]
    foot = axis_angle_to_matrix(torch.tensor([[0.2, bend, 0.1]], dtype=torch.float64)).numpy()
    knee_direction = np.array([[1.0, 0.0, 0.3]])
    hip, knee, ankle = chain.solve(pelvis, np.zeros((1, 3)), target, foot, knee_direction)
    hip_global = pelvis @ hip
    assert np.allclose(hip_global @ (chain.thigh + (knee @ chain.shank)[0]), target, atol=1e-9)
    assert np.allclose(hip_global @ knee @ ankle, foot, atol=1e-9)
    assert np.allclose(knee, rotation_x(angle), atol=1e-12)


def test_leg_ik_leaves_a_straight_leg_beyond_reach():
    chain = LegChain(np.array([0.0, -0.4, 0.0]), np.array([0.0, -0.4, 0.0]))
    assert chain.reach == pytest.approx(0.8)
    assert chain.knee_angle(np.array([0.9, 0.8, 0.0]))[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert chain.knee_angle(np.array([0.0]))[0] == pytest.approx(math.pi)


@given(st.floats(-1, 1), st.floats(-1, 1), st.floats(0.001, 0.1))
def test_soft_min_and_clamp_stay_below_and_leave_the_far_side_alone(a, b, width):
    a_, b_, w = np.array([a]), np.array([b]), np.array([width])
    assert soft_min(a_, b_, w)[0] <= min(a, b) + 1e-12
    clamped = soft_clamp(a_, b_, w)[0]
    assert clamped <= b + 1e-12 and clamped <= a + 1e-12
    if a <= b - width:
        assert clamped == a


def test_curves():
    u = np.linspace(-0.5, 1.5, 2001)
    assert ease(u)[0] == 0 and ease(u)[-1] == 1 and np.all(np.diff(ease(u)) >= 0)
    derivative = np.gradient(ease_integral(u), u)
    assert np.allclose(derivative, ease(u), atol=1e-3)                     # it is the integral
    values = np.random.default_rng(0).normal(size=500).cumsum()
    smooth = smooth_below(values, 10)
    assert np.all(smooth <= values + 1e-12)
    assert np.abs(np.diff(smooth, 2)).max() < np.abs(np.diff(values, 2)).max() / 5


# --- subjects ---------------------------------------------------------------------------------


def test_random_subjects_vary_in_height_and_build():
    rng = np.random.default_rng(0)
    betas = np.stack([random_subject(rng, BODY) for _ in range(200)])
    heights = BODY.height(torch.as_tensor(betas)).numpy()
    assert heights.min() >= 1.5 - 1e-3 and heights.max() <= 1.95 + 1e-3
    assert np.ptp(heights) > 0.35
    assert np.all(betas[:, 1:].std(axis=0) > 0.4) and betas.dtype == np.float32
    same = [random_subject(np.random.default_rng(5), BODY) for _ in range(2)]
    assert np.array_equal(*same)
    with pytest.raises(ValueError, match="height_range"):
        random_subject(rng, BODY, height_range=(1.9, 1.6))


def test_random_subjects_for_smpl(smpl_body):
    rng = np.random.default_rng(1)
    betas = np.stack([random_subject(rng, smpl_body) for _ in range(5)])
    assert betas.shape == (5, 10)
    heights = smpl_body.height(torch.as_tensor(betas)).numpy()
    assert heights.min() >= 1.5 - 0.01 and heights.max() <= 1.95 + 0.01


def test_subject_stands_on_the_floor():
    subject = Subject.of(BODY, np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    assert subject.height == pytest.approx(1.80 - 0.005 * 1.80, abs=1e-6)   # head top over the big toe
    with pytest.raises(ValueError, match="one subject"):
        Subject.of(BODY, np.zeros((2, 4)))


# --- chaining, programs, validation -------------------------------------------------------------


def test_render_chains_segments_and_refuses_gaps():
    subject = Subject.of(BODY)
    first = walk(subject, Placement(2.0, 0.0, 0.0), seed=0, distance=1.0)
    second = squat(subject, first.end, seed=0)
    motion = render([first, second], FPS)
    assert list(dict.fromkeys(motion.labels)) == ["walk", "squat"]
    assert motion.segments[1].start_time == pytest.approx(first.duration)
    with pytest.raises(ValueError, match="starts at"):
        render([first, squat(subject, Placement(0.0, 0.0, 0.0), seed=0)], FPS)
    with pytest.raises(ValueError, match="fps"):
        render([first], 0.0)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("walk", dict(speed=5.0), "speed must be within"),
    ("walk", dict(distance=3.0, turn=6.0), "radius"),
    ("walk", dict(direction="sideways"), "direction must be one of"),
    ("squat", dict(depth=0.9), "depth must be within"),
    ("arm_raise", dict(side="middle"), "side must be one of"),
    ("leg_extension", dict(direction="back", angle=0.8), "angle must be within"),
    ("sit", dict(chair_height=1.2), "chair_height must be within"),
    ("turn", dict(angle=float("nan")), "angle must be within"),
    ("idle", dict(wobble=1.0), "unexpected keyword"),
    ("dance", {}, "unknown motion"),
])
def test_bad_parameters_are_named(name, params, message):
    with pytest.raises(ValueError, match=message):
        make_motion(name, BODY, **params)


@pytest.fixture(scope="module")
def program():
    return random_program(120.0, 20.0, 7, BODY)


def test_random_program_stays_in_its_area_without_jumps(program):
    assert len(program) == 2400 and program.fps == 20.0
    (x0, x1), (y0, y1) = AREA
    pelvis = program.pelvis
    assert pelvis[:, 0].min() >= x0 and pelvis[:, 0].max() <= x1
    assert pelvis[:, 1].min() >= y0 and pelvis[:, 1].max() <= y1
    joints = program.joints(BODY)
    assert (np.linalg.norm(np.diff(joints, axis=0), axis=-1) * program.fps).max() < MAX_JOINT_SPEED
    slide, height = foot_measures(program, joints)
    assert slide < 0.01 and height < 0.01 and joints[..., 2].min() > -0.01
    assert euler_outside_limits(program.local_rotations)[:, 1:].max() < 0.01
    assert len(set(program.labels)) >= 5
    starts = [s.start_time for s in program.segments]
    assert starts == sorted(starts) and starts[0] == 0.0


def test_random_program_is_reproducible_and_rate_independent(program):
    again = random_program(120.0, 20.0, 7, BODY)
    assert np.array_equal(again.local_rotations, program.local_rotations)
    assert not np.array_equal(random_program(120.0, 20.0, 8, BODY).translation, program.translation)
    coarse = random_program(120.0, 10.0, 7, BODY)
    assert np.allclose(coarse.joints(BODY), program.joints(BODY)[::2], atol=1e-5)
    with pytest.raises(ValueError, match="too small"):
        random_program(10.0, 20.0, 0, BODY, area=((1.0, 2.0), (-1.0, 1.0)))


def test_random_program_with_smpl_body(smpl_body):
    motion = random_program(40.0, 20.0, 3, smpl_body, betas=np.zeros(10, np.float32))
    joints = motion.joints(smpl_body)
    slide, height = foot_measures(motion, joints)
    assert motion.betas.shape == (10,)
    assert slide < 0.01 and height < 0.01 and joints[..., 2].min() > -0.01


def test_mars_rehab_program_faces_the_radar_two_metres_away():
    motion = make_program("mars_rehab", BODY, fps=20.0, seed=0, repetitions=1)
    names = [s.name for s in motion.segments if s.name != "idle"]
    assert names == ["arm_raise_side_left", "arm_raise_side_right", "arm_raise_side_both", "front_lunge_left",
                     "front_lunge_right", "squat", "side_lunge_left", "side_lunge_right",
                     "leg_extension_side_left", "leg_extension_side_right"]
    assert np.linalg.norm(motion.pelvis[:, :2] - [2.0, 0.0], axis=1).max() < 0.5
    heading = heading_of(motion)
    assert np.cos(heading - math.pi).min() > math.cos(0.05)        # facing the radar (-x) throughout
    with pytest.raises(ValueError, match="unknown program"):
        make_program("marathon", BODY)


def test_ten_minutes_generate_in_well_under_a_few_seconds():
    started = time.perf_counter()
    motion = random_program(600.0, 20.0, 11, BODY)
    elapsed = time.perf_counter() - started
    assert len(motion) == 12000
    assert elapsed < 5.0, f"10 minutes at 20 fps took {elapsed:.2f} s"
