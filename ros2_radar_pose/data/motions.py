"""Procedural, parameterised human motions as SMPL-24 local rotations plus a root trajectory.

World frame: REP-103, x forward from the radar (which sits at the origin looking along +x), y
left, z up, floor at z = 0. A ``Motion`` holds, per frame, the 24 local rotations whose root
rotation is the body's orientation in the world (SMPL's canonical frame turned into z-up axes
and to the body's heading) and a translation such that ``body(betas, local_rotations,
translation).joints`` are world joints standing on the floor. ``Motion.contacts`` says which feet
are planted: a planted foot's toe tip (``*_big_toe``) stays fixed on the floor throughout, its ball
(``*_foot``) too until the heel rises far enough for the foot to roll over the toes (push-off,
the back foot of a lunge); a flat foot touches the floor with its lowest joint (data/subjects.py).

Every motion is a ``Segment``: continuous functions of time (data/curves.py) drawn from its
parameters and seed, sampled at any frame rate by ``render`` (the same seed at 10 and 30 fps is
the same motion at different times). A segment starts and ends standing still in the same neutral
pose at its ``start`` and ``end`` placement, so segments chain into programs (data/programs.py)
without jumps. How a segment becomes rotations (data/tracks.py): the trunk, head and arms are
Euler angles inside body/limits.py's ranges; the feet follow footstep plans (data/footsteps.py);
the legs are solved by analytic IK so planted feet do not slide.

Feet and pelvis height: the feet are placed first (on the floor where planted) and the legs are
solved to reach them exactly, so sliding is zero by construction; what remains to get right is
that the legs can reach. Stepping motions (walk, turn, lunges) plan their pelvis height once on a
fixed 200 Hz grid: the highest pelvis at which every weight-bearing leg reaches its foot with a
few millimetres to spare, taken as the running minimum over ±0.12 s and smoothed (so the pelvis
settles before a foot lands, and dips through double support as in human gait). Measured by
test/test_motions.py: planted feet slide under 3 mm (the toe-roll's smooth hand-over from ball to
toe tip; 0 otherwise), no joint below the floor by more than 3 mm, joints within EULER_LIMITS.

Motions (``MOTIONS``; ``make_motion(name, body, ...)`` renders one by name): idle, walk, turn,
arm_raise, leg_extension, front_lunge, side_lunge, squat, wave, sit.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.body.kinematics import forward_kinematics
from ros2_radar_pose.body.models import BodyModel
from ros2_radar_pose.data.curves import SmoothNoise, bump, ease, ease_integral, lerp, ramp, smooth_below, window
from ros2_radar_pose.data.footsteps import (
    Gait,
    Plant,
    foot_track,
    hang_from_toes,
    plan_steps,
    standing_foot,
    toe_tip,
)
from ros2_radar_pose.data.subjects import SIDES, Subject
from ros2_radar_pose.data.tracks import SWING_SLACK, Track, bearing_reach, foot_rotation, solve

J = SMPL_24.index
STAND_DROP = 0.004          # m the pelvis stands below straight-leg height: relaxed knees (about 10 degrees)
STATIC_SOFTNESS = 0.002     # m, the reach clamp's width when standing (data/tracks.py)
PLAN_RATE = 200.0           # Hz, the fixed time grid the pelvis height of stepping motions is planned on
SETTLE_RADIUS = 0.12        # s, how far ahead and back that plan looks for a foot it must reach
GRAVITY = 9.81
MAX_TURN_RATE = 0.6         # rad/s, the fastest heading change while walking
MAX_FROUDE = 0.25           # walking faster than this asks joint ranges beyond body/limits.py


def _neutral_euler() -> np.ndarray:
    euler = np.zeros((24, 3))
    for side, sign in ((0, 1.0), (1, -1.0)):           # the right side mirrors y and z
        prefix = SIDES[side]
        euler[J(f"{prefix}_collar")] = (0.0, 0.0, -0.15 * sign)
        euler[J(f"{prefix}_shoulder")] = (0.0, 0.0, -1.28 * sign)
        euler[J(f"{prefix}_elbow")] = (0.0, -0.2 * sign, 0.0)
    return euler


NEUTRAL_EULER = _neutral_euler()      # (24, 3): standing, arms hanging a little away from the body
ARM = ("collar", "shoulder", "elbow")
HANGING_ELEVATION = math.pi / 2 - 1.43  # rad, arm elevation of the neutral pose (collar + shoulder)


@dataclass(frozen=True)
class Placement:
    """Where a segment starts or ends: pelvis ground position (x, y) in the world, m, and the
    heading, rad about z (0 faces +x, away from the radar; pi faces the radar)."""

    x: float = 2.0
    y: float = 0.0
    heading: float = math.pi

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])

    @classmethod
    def facing_sensor(cls, x: float, y: float) -> Placement:
        """At (x, y), facing the radar at the origin."""
        return cls(x, y, math.atan2(-y, -x))


@dataclass(frozen=True, eq=False)
class Segment:
    """One motion: ``sample(times (T,))`` gives its Track at local times in [0, ``duration``] s.
    ``params`` are the parameters it was made with, after validation and defaults."""

    name: str
    subject: Subject
    start: Placement
    end: Placement
    duration: float
    params: dict
    sample: Callable[[np.ndarray], Track]

    def motion(self, fps: float = 30.0) -> Motion:
        return render([self], fps)


@dataclass(frozen=True)
class SegmentInfo:
    """A segment of a Motion: its name, start time (s) in the motion, duration (s), parameters."""

    name: str
    start_time: float
    duration: float
    params: dict


@dataclass
class Motion:
    """T frames at ``fps``: ``local_rotations`` (T, 24, 3, 3) float32 (the root's in the world
    frame), ``translation`` (T, 3) float32, ``betas`` (K,) float32, ``contacts`` (T, 2) bool
    (left, right foot planted), ``labels`` (T,) str (the segment each frame belongs to),
    ``segments`` (what was performed when), ``pelvis`` (T, 3) float32 world pelvis position."""

    name: str
    fps: float
    local_rotations: np.ndarray
    translation: np.ndarray
    betas: np.ndarray
    contacts: np.ndarray
    labels: np.ndarray
    segments: tuple[SegmentInfo, ...] = ()
    pelvis: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.translation)

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last."""
        return (len(self) - 1) / self.fps

    @property
    def times(self) -> np.ndarray:
        """(T,) frame times, s."""
        return np.arange(len(self)) / self.fps

    def joints(self, body: BodyModel, chunk: int = 8192) -> np.ndarray:
        """World joints (T, 29, 3) float32 (HYBRIK_29 order) of ``body`` performing the motion."""
        if body.num_betas != len(self.betas):
            raise ValueError(f"the motion was made for {len(self.betas)} shape coefficients; "
                             f"{type(body).__name__} takes {body.num_betas}")
        out = []
        with torch.no_grad():
            rest = body.rest_joints(torch.as_tensor(self.betas, dtype=torch.float64)[None])
            for begin in range(0, len(self), chunk):
                rotations = torch.as_tensor(self.local_rotations[begin:begin + chunk], dtype=torch.float64)
                translation = torch.as_tensor(self.translation[begin:begin + chunk], dtype=torch.float64)
                joints, _ = forward_kinematics(rotations, rest.expand(len(rotations), -1, -1),
                                               body.joint_set.parents, translation)
                out.append(joints.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 29, 3), np.float32)


def render(segments: list[Segment], fps: float, name: str | None = None, duration: float | None = None) -> Motion:
    """Sample chained ``segments`` at ``fps`` into one Motion: frames at k / fps for k = 0, 1, ...
    up to the end of the last segment, or ``round(duration * fps)`` frames when ``duration`` is
    given (cutting the last segment short). Each segment must start where the previous one ended."""
    if not segments:
        raise ValueError("render needs at least one segment")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 1000):
        raise ValueError(f"fps must be a positive frame rate up to 1000 Hz, got {fps!r}")
    subject = segments[0].subject
    for before, after in zip(segments, segments[1:]):
        if after.subject is not subject:
            raise ValueError(f"segment {after.name} is for another subject than {segments[0].name}")
        gap = math.hypot(after.start.x - before.end.x, after.start.y - before.end.y)
        if gap > 1e-6 or abs(after.start.heading - before.end.heading) > 1e-6:
            raise ValueError(f"{after.name} starts at {after.start} but {before.name} ended at {before.end}")
    ends = np.cumsum([s.duration for s in segments])
    starts = ends - [s.duration for s in segments]
    if duration is None:
        count = int(math.floor(ends[-1] * fps + 1e-9)) + 1
    else:
        count = int(round(duration * fps))
        if count < 1 or (count - 1) / fps > ends[-1] + 1e-9:
            raise ValueError(f"duration {duration} s is not within the segments' {ends[-1]:.2f} s")
    times = np.arange(count) / fps
    which = np.minimum(np.searchsorted(ends, times, side="right"), len(segments) - 1)
    tracks, labels, infos = [], [], []
    for index, segment in enumerate(segments):
        local = times[which == index] - starts[index]
        infos.append(SegmentInfo(segment.name, float(starts[index]), segment.duration, dict(segment.params)))
        if len(local):
            tracks.append(segment.sample(np.clip(local, 0.0, segment.duration)))
            labels.extend([segment.name] * len(local))
    track = Track.concatenate(tracks)
    solved = solve(track, subject, times)
    return Motion(name or "+".join(dict.fromkeys(s.name for s in segments)), float(fps),
                  solved.local_rotations.astype(np.float32), solved.translation.astype(np.float32),
                  subject.betas.copy(), track.contact.copy(), np.array(labels), tuple(infos),
                  solved.pelvis.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Building blocks


def _check(motion: str, name: str, value: float, low: float, high: float, unit: str = "") -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{motion}: {name} must be within [{low:g}, {high:g}]{unit and ' ' + unit}, got {value!r}")
    return float(value)


def _choice(motion: str, name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{motion}: {name} must be one of {', '.join(options)}; got {value!r}")
    return value


def _sides(motion: str, side: str) -> tuple[int, ...]:
    return {"left": (0,), "right": (1,), "both": (0, 1)}[_choice(motion, "side", side, ("left", "right", "both"))]


def _standing_z(subject: Subject) -> float:
    return subject.pelvis_height - STAND_DROP


def _standing_track(subject: Subject, place: Placement, t: np.ndarray) -> Track:
    """Standing still in the neutral pose at ``place`` for every time in ``t`` (T,)."""
    n = len(t)
    ball, heading = np.zeros((n, 2, 3)), np.zeros((n, 2))
    for side in (0, 1):
        xy, foot_heading = standing_foot(subject, side, place.xy, np.float64(place.heading))
        ball[:, side] = [*xy, subject.ball_height[side]]
        heading[:, side] = foot_heading
    return Track(pelvis_xy=np.tile(place.xy, (n, 1)), pelvis_z=np.full(n, _standing_z(subject)),
                 heading=np.full(n, place.heading), euler=np.tile(NEUTRAL_EULER, (n, 1, 1)), ball=ball,
                 foot_heading=heading, foot_pitch=np.zeros((n, 2)), foot_roll=np.zeros((n, 2)),
                 toe_flex=np.zeros((n, 2)),
                 contact=np.ones((n, 2), bool), support=np.ones((n, 2)), softness=np.full(n, STATIC_SOFTNESS))


def _set_feet(track: Track, subject: Subject, plants: list[list[Plant]], t: np.ndarray) -> None:
    for side in (0, 1):
        foot = foot_track(plants[side], t, subject, side)
        track.ball[:, side], track.foot_heading[:, side] = foot.ball, foot.heading
        track.foot_pitch[:, side], track.toe_flex[:, side] = foot.pitch, foot.toe_flex
        track.contact[:, side], track.support[:, side] = foot.contact, foot.support


def _body_offset(place: Placement, forward: np.ndarray, left: np.ndarray) -> np.ndarray:
    """(T, 2) world position of a (forward, left) offset (T,) from ``place`` in its body frame."""
    c, s = math.cos(place.heading), math.sin(place.heading)
    return place.xy + np.stack([c * forward - s * left, s * forward + c * left], axis=-1)


def _arm(track: Track, side: int, target: np.ndarray, weight: np.ndarray) -> None:
    """Blend one arm's collar, shoulder and elbow Euler angles towards ``target`` (3, 3) or
    (T, 3, 3), given for the left arm (the right mirrors y and z), by ``weight`` (T,)."""
    mirror = np.array([1.0, 1.0, 1.0]) if side == 0 else np.array([1.0, -1.0, -1.0])
    joints = [J(f"{SIDES[side]}_{name}") for name in ARM]
    track.euler[:, joints] = lerp(track.euler[:, joints], np.asarray(target) * mirror, weight)


def _arm_elevated(elevation: float, plane: str) -> np.ndarray:
    """Left collar, shoulder, elbow Euler angles (3, 3) for a straight arm raised ``elevation`` rad
    from hanging (pi/2: horizontal) in the body's sagittal (front) or frontal (side) plane."""
    if plane == "side":
        collar = float(np.interp(elevation, [HANGING_ELEVATION, math.pi / 2, math.pi], [-0.15, 0.0, 0.38]))
        return np.array([[0.0, 0.0, collar], [0.0, 0.0, elevation - math.pi / 2 - collar], [0.0, -0.05, 0.0]])
    return np.array([[0.0, 0.0, -0.1], [0.0, -1.5, elevation - math.pi / 2], [0.0, -0.05, 0.0]])


def _repetitions(start: float, reps: int, go: float, hold: float, back: float, pause: float) -> tuple[list, float]:
    """Timing of repeated go-hold-back movements: [(go start, hold start, back start, back end)], end."""
    spans, t = [], start
    for _ in range(reps):
        spans.append((t, t + go, t + go + hold, t + go + hold + back))
        t += go + hold + back + pause
    return spans, t - pause


def _envelope(t: np.ndarray, spans: list) -> np.ndarray:
    return sum(window(t, (a, b), (c, d)) for a, b, c, d in spans)


def _style(rng: np.random.Generator, spread: float = 0.1) -> float:
    """A random factor near 1: how this performance differs from the next."""
    return float(np.clip(rng.normal(1.0, spread), 1 - 2.5 * spread, 1 + 2.5 * spread))


def _breathing(track: Track, t: np.ndarray, rng: np.random.Generator, weight: np.ndarray) -> None:
    """Chest and shoulders rising and falling at a random resting breathing rate."""
    rate, phase = rng.uniform(0.2, 0.33), rng.uniform(0, 2 * np.pi)
    breath = np.sin(2 * np.pi * rate * t + phase) * weight
    track.euler[:, J("spine3"), 0] -= 0.015 * breath
    track.euler[:, J("left_collar"), 2] += 0.02 * breath
    track.euler[:, J("right_collar"), 2] -= 0.02 * breath


def _segment(name: str, subject: Subject, start: Placement, duration: float, params: dict,
             sample: Callable[[np.ndarray], Track], end: Placement | None = None) -> Segment:
    return Segment(name, subject, start, end or start, float(duration), params, sample)


Sampler = Callable[[np.ndarray], Track]


def _within_reach(subject: Subject, duration: float, raw: Sampler) -> Sampler:
    """``raw`` with its pelvis height lowered, smoothly, to where every weight-bearing leg reaches
    its foot with SWING_SLACK of leg length to spare (so feet land and lift off with the knee a little
    bent, and the pelvis dips through double support). Planned once on a fixed time grid, so the
    result does not depend on the rate it is sampled at."""
    grid = np.arange(int(math.ceil(duration * PLAN_RATE)) + 1) / PLAN_RATE
    plan = raw(grid)
    reachable = np.minimum(plan.pelvis_z, bearing_reach(plan, subject, SWING_SLACK))
    height = smooth_below(reachable, int(round(SETTLE_RADIUS * PLAN_RATE)))

    def sample(t: np.ndarray) -> Track:
        track = raw(t)
        track.pelvis_z = np.interp(t, grid, height)
        return track

    return sample


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# Motions. Each takes the subject, where it starts, a seed (int, Generator or None) and its own
# parameters, and returns a Segment.


def idle(subject: Subject, start: Placement | None = None, seed=None, *, duration: float = 5.0,
         sway: float = 1.0, look_around: float = 1.0) -> Segment:
    """Standing: postural sway (about 1 cm, 0.1-0.4 Hz), slow weight shifts between the feet,
    breathing, looking around. ``sway`` and ``look_around`` scale those amplitudes (0 for none)."""
    start, rng = start or Placement(), _rng(seed)
    duration = _check("idle", "duration", duration, 1.0, 3600.0, "s")
    sway = _check("idle", "sway", sway, 0.0, 3.0)
    look_around = _check("idle", "look_around", look_around, 0.0, 2.0)
    postural = SmoothNoise.draw(rng, 2, (0.1, 0.4))
    shift = SmoothNoise.draw(rng, 1, (0.02, 0.1), terms=3)
    head = SmoothNoise.draw(rng, 2, (0.04, 0.2), terms=3)
    arms = SmoothNoise.draw(rng, 2, (0.1, 0.3), terms=3)
    shift_size = 0.025 * rng.uniform(0.5, 1.5)
    breath_seed = int(rng.integers(2 ** 31))
    ease_time = min(0.8, duration / 3)

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        weight = window(t, (0.0, ease_time), (duration - ease_time, duration))
        wander = postural(t) * np.array([0.006, 0.008]) * sway
        lateral = wander[:, 1] + shift_size * sway * shift(t)[:, 0]
        track.pelvis_xy = _body_offset(start, wander[:, 0] * weight, lateral * weight)
        track.pelvis_z -= 0.003 * weight
        track.euler[:, 0, 2] -= 0.8 * lateral * weight                         # the unweighted hip drops
        track.euler[:, J("spine2"), 2] += 0.8 * lateral * weight
        look = head(t) * weight[:, None] * look_around
        track.euler[:, J("neck"), 1] += 0.10 * look[:, 0]
        track.euler[:, J("head"), 1] += 0.12 * look[:, 0]
        track.euler[:, J("head"), 0] += 0.05 * look[:, 1]
        swing = arms(t) * 0.04 * sway * weight[:, None]
        track.euler[:, J("left_shoulder"), 0] += swing[:, 0]
        track.euler[:, J("right_shoulder"), 0] += swing[:, 1]
        _breathing(track, t, np.random.default_rng(breath_seed), weight)
        return track

    return _segment("idle", subject, start, duration, dict(duration=duration, sway=sway, look_around=look_around),
                    sample)


def max_walking_speed(subject: Subject) -> float:
    """The brisk end of walking for this subject, m/s: Froude number v^2 / g L = MAX_FROUDE
    (about 1.5 m/s at 1.70 m tall)."""
    return round(math.sqrt(MAX_FROUDE * GRAVITY * subject.hip_height), 2)


def stride_length(subject: Subject, speed: float) -> float:
    """Stride (two steps) in m at ``speed`` m/s: Alexander's dynamic-similarity rule, stride
    = 2.5 L (v^2 / g L)^0.3 with L the leg length (hip height)."""
    leg = subject.hip_height
    return 2.5 * leg * (speed ** 2 / (GRAVITY * leg)) ** 0.3


def walk(subject: Subject, start: Placement | None = None, seed=None, *, speed: float = 1.2,
         distance: float = 3.0, turn: float = 0.0, direction: str = "forward") -> Segment:
    """Walk ``distance`` m at ``speed`` m/s (up to ``max_walking_speed``; reached after an easy
    start, and eased down to a stop; a walk too short to reach it is slower, see ``params``),
    turning the heading by ``turn`` rad along the way (a curve; 0: straight). ``direction``:
    "forward" walks the way ``start`` faces; "towards" / "away" face the radar (the origin) or away
    from it (the walk then begins facing that way, ignoring ``start.heading``). Cadence and step
    length follow speed and leg length; the pelvis sways over the stance foot, the arms swing
    against the legs. ``params`` hold the cruising speed and when it is held (cruise_start/end)."""
    start, rng = start or Placement(), _rng(seed)
    speed = _check("walk", "speed", speed, 0.3, max_walking_speed(subject), "m/s")
    distance = _check("walk", "distance", distance, 0.3, 100.0, "m")
    turn = _check("walk", "turn", turn, -2 * math.pi, 2 * math.pi, "rad")
    direction = _choice("walk", "direction", direction, ("forward", "towards", "away"))
    if direction != "forward":
        heading = math.atan2(-start.y, -start.x) if direction == "towards" else math.atan2(start.y, start.x)
        start = Placement(start.x, start.y, heading)
    # Speeding up (and slowing down) takes 1.2 s per m/s, at least 0.6 s, and covers half the
    # distance it would at full speed; a walk too short for that is slower (distance >= 0.3 m
    # gives speed >= 0.5 m/s).
    accelerate = max(0.6, 1.2 * speed)
    if distance < speed * accelerate:
        speed = math.sqrt(distance / 1.2)
        accelerate = 1.2 * speed
    cruise = distance / speed - accelerate
    curvature = 1.875 * abs(turn) / distance                 # the sharpest bend of the path, 1/m
    if curvature > min(1 / 0.6, MAX_TURN_RATE / speed):
        raise ValueError(f"walk: turning {turn:.2f} rad over {distance:.2f} m at {speed:.2f} m/s bends to a "
                         f"{1 / curvature:.2f} m radius; walk slower or farther (at most {MAX_TURN_RATE} rad/s "
                         f"of heading change, radius 0.6 m)")
    stride = stride_length(subject, speed) * _style(rng, 0.05)
    gait = Gait(speed / stride, full_step=0.75 * subject.hip_height, lift=0.055 * subject.height / 1.7)
    first = int(rng.integers(2))

    grid = np.linspace(0.0, distance, max(2, int(math.ceil(distance / 0.005)) + 1))
    path_heading = start.heading + turn * ease(grid / distance)
    tangent = np.stack([np.cos(path_heading), np.sin(path_heading)], axis=-1)
    steps = np.diff(grid)[:, None] * (tangent[1:] + tangent[:-1]) / 2           # trapezoid rule
    path = start.xy + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    move = max(0.3, gait.heel_rise_time + 0.1)
    stop = move + 2 * accelerate + cruise

    def along(t: np.ndarray) -> np.ndarray:
        tau = np.asarray(t) - move
        slowing = (tau - accelerate - cruise) / accelerate
        return speed * accelerate * (ease_integral(tau / accelerate) - ease_integral(slowing))

    def pose_at(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = along(t)
        xy = np.stack([np.interp(s, grid, path[:, 0]), np.interp(s, grid, path[:, 1])], axis=-1)
        return xy, np.interp(s, grid, path_heading)

    plants, last_landing = plan_steps(subject, pose_at, move, stop, gait, first)
    duration = max(stop, last_landing) + 0.4
    period = 1 / gait.stride_frequency
    sway = 0.025 * _style(rng, 0.2) * min(1.5, 1.0 / speed)
    arm_swing = (0.1 + 0.15 * speed) * _style(rng, 0.15)
    yaw, obliquity = 0.06 * _style(rng, 0.2), 0.04 * _style(rng, 0.2)
    tilt = 0.05 + 0.08 * speed
    # Gait phase 0 at the first swing foot's heel strike.
    first_strike = move + gait.swing_time
    end_xy, end_heading = pose_at(np.array([stop]))

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        _set_feet(track, subject, plants, t)
        xy, heading = pose_at(t)
        gait_weight = window(t, (move, move + period), (max(move + period, last_landing - period), last_landing))
        phase = 2 * np.pi * gait.stride_frequency * (t - first_strike)
        toward_first = 1.0 if first == 0 else -1.0              # +1 when the first foot to step is the left
        # Phase 0 to pi: the first foot's stance; the pelvis leans over it.
        lateral = toward_first * sway * np.sin(phase) * gait_weight
        track.pelvis_xy = xy + lateral[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        track.heading = heading
        track.pelvis_z -= 0.01 * gait_weight
        # The stepping foot's hip leads as it lands; the pelvis drops on the swinging side.
        track.euler[:, 0, 0] = tilt * gait_weight                      # pelvis tipped forward, trunk upright
        track.euler[:, J("spine1"), 0] = -tilt * gait_weight
        track.euler[:, 0, 1] = -toward_first * yaw * np.cos(phase) * gait_weight
        track.euler[:, 0, 2] = toward_first * obliquity * np.sin(phase) * gait_weight
        for spine in ("spine1", "spine2", "spine3"):
            track.euler[:, J(spine), 1] = toward_first * yaw / 2 * np.cos(phase) * gait_weight
        # Each arm swings forward with the opposite leg.
        for side in (0, 1):
            leads = -1.0 if side == first else 1.0             # the first foot's arm is back as it lands
            forward = leads * arm_swing * np.cos(phase) * gait_weight
            track.euler[:, J(f"{SIDES[side]}_shoulder"), 0] -= forward
            bend = 0.1 * np.maximum(forward, 0.0) / arm_swing           # the elbow bends as the arm comes forward
            track.euler[:, J(f"{SIDES[side]}_elbow"), 1] += -bend if side == 0 else bend
        return track

    params = dict(speed=speed, distance=distance, turn=turn, direction=direction, stride=stride,
                  cadence=2 * gait.stride_frequency, cruise_start=move + accelerate,
                  cruise_end=move + accelerate + cruise)
    end = Placement(float(end_xy[0, 0]), float(end_xy[0, 1]), float(end_heading[0]))
    return _segment("walk", subject, start, duration, params, _within_reach(subject, duration, sample), end)


def turn(subject: Subject, start: Placement | None = None, seed=None, *, angle: float = math.pi / 2,
         rate: float = 1.2) -> Segment:
    """Turn on the spot by ``angle`` rad (positive: to the left, counter-clockwise seen from above)
    with small steps, at up to ``rate`` rad/s; the pelvis stays where it is."""
    start, rng = start or Placement(), _rng(seed)
    angle = _check("turn", "angle", angle, -2 * math.pi, 2 * math.pi, "rad")
    rate = _check("turn", "rate", rate, 0.3, 3.0, "rad/s")
    if abs(angle) < 0.05:
        raise ValueError(f"turn: angle {angle} rad is too small to step for; use idle")
    rate *= _style(rng, 0.08)
    turning = max(0.8, 1.875 * abs(angle) / rate)
    gait = Gait(max(0.8, rate / 1.1), duty=0.6, mid_stance=0.5, heel_rise=0.0, pitch=0.0,
                lift=0.035, full_step=0.25)
    begin = 0.25
    turn_start = begin + 0.5 * gait.swing_time

    def pose_at(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.tile(start.xy, (len(t), 1)), start.heading + angle * ramp(t, turn_start, turn_start + turning)

    plants, last_landing = plan_steps(subject, pose_at, begin, turn_start + turning, gait, 0 if angle > 0 else 1)
    duration = last_landing + 0.3

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        _set_feet(track, subject, plants, t)
        track.heading = pose_at(t)[1]
        # The head leads the turn a little.
        lead = 0.15 * np.sign(angle) * window(t, (turn_start - 0.2, turn_start + 0.3),
                                              (turn_start + turning - 0.5, turn_start + turning))
        track.euler[:, J("neck"), 1] += lead
        return track

    end = Placement(start.x, start.y, start.heading + angle)
    return _segment("turn", subject, start, duration, dict(angle=angle, rate=rate),
                    _within_reach(subject, duration, sample), end)


def arm_raise(subject: Subject, start: Placement | None = None, seed=None, *, side: str = "both",
              plane: str = "side", angle: float = math.pi / 2, repetitions: int = 1, hold: float = 1.0,
              raise_time: float = 1.2) -> Segment:
    """Upper-limb extension: raise the ``side`` arm(s) (left, right, both), straight, by ``angle``
    rad from hanging (pi/2: horizontal; up to 2.7 in front, 3.0 to the side) in the ``plane``
    front or side, hold, lower; ``repetitions`` times."""
    start, rng = start or Placement(), _rng(seed)
    arms = _sides("arm_raise", side)
    plane = _choice("arm_raise", "plane", plane, ("front", "side"))
    angle = _check("arm_raise", "angle", angle, 0.3, 2.7 if plane == "front" else 3.0, "rad")
    repetitions = int(_check("arm_raise", "repetitions", repetitions, 1, 100))
    hold = _check("arm_raise", "hold", hold, 0.0, 60.0, "s")
    raise_time = _check("arm_raise", "raise_time", raise_time, 0.5, 10.0, "s") * _style(rng)
    spans, end = _repetitions(0.3, repetitions, raise_time, hold * _style(rng), raise_time, 0.4 * _style(rng))
    target = _arm_elevated(angle, plane)
    breath_seed = int(rng.integers(2 ** 31))
    duration = end + 0.3

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        weight = _envelope(t, spans)
        for arm in arms:
            _arm(track, arm, target, weight)
        if len(arms) == 1:            # lean away a little from a single raised arm
            track.euler[:, J("spine2"), 2] += (0.04 if arms[0] == 1 else -0.04) * weight * angle / math.pi
        _breathing(track, t, np.random.default_rng(breath_seed), window(t, (0, 1.0), (duration - 1.0, duration)))
        return track

    params = dict(side=side, plane=plane, angle=angle, repetitions=repetitions, hold=hold, raise_time=raise_time)
    return _segment(f"arm_raise_{plane}_{side}", subject, start, duration, params, sample)


def _rotate(vectors: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (T, 3) ``vectors`` about unit ``axis`` (3,) by ``angle`` (T,) (Rodrigues)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return vectors * c + np.cross(axis, vectors) * s + axis * (vectors @ axis)[:, None] * (1 - c)


def leg_extension(subject: Subject, start: Placement | None = None, seed=None, *, side: str = "left",
                  direction: str = "side", angle: float = 0.5, repetitions: int = 1, hold: float = 1.0,
                  lift_time: float = 1.0) -> Segment:
    """Lower-limb extension: shift the weight onto the other foot, lift the ``side`` leg nearly
    straight by ``angle`` rad from vertical to the front (up to 1.0), side (0.6) or back (0.4),
    hold, lower; ``repetitions`` times, then stand on both feet again."""
    start, rng = start or Placement(), _rng(seed)
    free = SIDES.index(_choice("leg_extension", "side", side, SIDES))
    direction = _choice("leg_extension", "direction", direction, ("front", "side", "back"))
    angle = _check("leg_extension", "angle", angle, 0.1, {"front": 1.0, "side": 0.6, "back": 0.4}[direction], "rad")
    repetitions = int(_check("leg_extension", "repetitions", repetitions, 1, 100))
    hold = _check("leg_extension", "hold", hold, 0.0, 30.0, "s")
    lift_time = _check("leg_extension", "lift_time", lift_time, 0.5, 10.0, "s") * _style(rng)
    shift_time = 0.8 * _style(rng)
    spans, end = _repetitions(0.2 + shift_time, repetitions, lift_time, hold * _style(rng), lift_time, 0.4)
    shift_span = ((0.2, 0.2 + shift_time), (end, end + shift_time))
    duration = end + shift_time + 0.3
    stance = 1 - free
    # Shift the pelvis over the stance foot's ankle.
    shift = subject.ankle_offset[stance, 1] * 0.85
    lift_windows = [(a, d) for a, _, _, d in spans]
    heading = start.heading
    forward_axis = np.array([math.cos(heading), math.sin(heading), 0.0])
    left_axis = np.array([-math.sin(heading), math.cos(heading), 0.0])
    axis, sign = {"front": (left_axis, -1.0), "back": (left_axis, 1.0),
                  "side": (forward_axis, 1.0 if free == 0 else -1.0)}[direction]
    hip_forward, hip_left = subject.hip_offset[free, 2], subject.hip_offset[free, 0]
    ball, foot_heading = standing_foot(subject, free, start.xy, np.float64(heading))
    ankle_stand = (np.array([*ball, subject.ball_height[free]])
                   - foot_rotation(foot_heading, np.float64(0.0)) @ subject.ball_from_ankle[free])

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        weight_shift = window(t, *shift_span)
        track.pelvis_xy = _body_offset(start, np.zeros_like(t), shift * weight_shift)
        track.pelvis_z -= 0.015 * weight_shift
        track.euler[:, 0, 2] += (0.04 if free == 0 else -0.04) * weight_shift    # free hip hitched a little
        raised = _envelope(t, spans)
        lifted = np.zeros(len(t), bool)
        for a, d in lift_windows:
            lifted |= (t > a) & (t < d)
        # The free ankle: its standing place rotated about the hip by the raise angle, the leg
        # shortened in the middle of the lift so the foot clears the floor.
        hip_xy = track.pelvis_xy + _body_offset(start, np.array([hip_forward]), np.array([hip_left]))[0] - start.xy
        hip = np.concatenate([hip_xy, (track.pelvis_z + subject.hip_offset[free, 1])[:, None]], axis=1)
        leg = (ankle_stand - hip) * (1 - 0.24 * raised * (1 - raised))[:, None]
        ankle = hip + _rotate(leg, axis, sign * angle * raised)
        pitch = {"front": -0.7, "side": 0.0, "back": 0.3}[direction] * angle * raised
        roll = sign * angle * raised if direction == "side" else np.zeros(len(t))
        rotation = foot_rotation(np.full(len(t), foot_heading), pitch, roll)
        free_ball = ankle + (rotation @ subject.ball_from_ankle[free][:, None])[..., 0]
        track.ball[:, free] = np.where(lifted[:, None], free_ball, track.ball[:, free])
        track.foot_pitch[:, free], track.foot_roll[:, free] = pitch, roll
        track.contact[:, free] = ~lifted
        track.support[:, free] = 1.0 - ease(raised / 0.2)
        track.euler[:, J("left_shoulder"), 2] += 0.15 * weight_shift       # arms out a little for balance
        track.euler[:, J("right_shoulder"), 2] -= 0.15 * weight_shift
        return track

    params = dict(side=side, direction=direction, angle=angle, repetitions=repetitions, hold=hold, lift_time=lift_time)
    return _segment(f"leg_extension_{direction}_{side}", subject, start, duration, params, sample)


def squat(subject: Subject, start: Placement | None = None, seed=None, *, depth: float = 0.3,
          repetitions: int = 1, hold: float = 0.5, down_time: float = 1.2, arms: str = "forward") -> Segment:
    """Squat: lower the pelvis by ``depth`` m (hips back, trunk leaning forward, heels down),
    hold, stand up; ``repetitions`` times. ``arms``: "forward" (raised for balance) or "down"."""
    start, rng = start or Placement(), _rng(seed)
    depth = _check("squat", "depth", depth, 0.05, 0.46 * subject.hip_height, "m")
    repetitions = int(_check("squat", "repetitions", repetitions, 1, 100))
    hold = _check("squat", "hold", hold, 0.0, 30.0, "s")
    down_time = _check("squat", "down_time", down_time, 0.5, 10.0, "s") * _style(rng)
    arms = _choice("squat", "arms", arms, ("forward", "down"))
    spans, end = _repetitions(0.3, repetitions, down_time, hold * _style(rng), down_time, 0.5 * _style(rng))
    duration = end + 0.3
    back = 0.55 * depth * _style(rng, 0.1)
    lean = 0.9 * depth / subject.hip_height
    arm_target = _arm_elevated(1.45, "front")

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        low = _envelope(t, spans)
        track.pelvis_xy = _body_offset(start, -back * low, np.zeros_like(t))
        track.pelvis_z -= depth * low
        track.euler[:, 0, 0] += lean * low
        track.euler[:, J("spine1"), 0] += 0.6 * lean * low
        track.euler[:, J("neck"), 0] -= 0.5 * lean * low                  # keep looking ahead
        track.euler[:, J("head"), 0] -= 0.5 * lean * low
        if arms == "forward":
            for arm in (0, 1):
                _arm(track, arm, arm_target, low)
        return track

    params = dict(depth=depth, repetitions=repetitions, hold=hold, down_time=down_time, arms=arms)
    return _segment("squat", subject, start, duration, params, sample)


def sit(subject: Subject, start: Placement | None = None, seed=None, *, chair_height: float | None = None,
        seated_time: float = 2.0, transfer_time: float = 1.6) -> Segment:
    """Sit down on an invisible chair behind the subject, stay seated ``seated_time`` s, stand up.
    ``chair_height``: height of the hip joints when seated, m (the seat surface lies about a
    buttock's thickness lower); default 0.29 of the subject's height."""
    start, rng = start or Placement(), _rng(seed)
    chair_height = 0.29 * subject.height if chair_height is None else chair_height
    chair_height = _check("sit", "chair_height", chair_height, 0.85 * subject.shank + 0.02,
                          subject.hip_height - 0.12, "m")
    seated_time = _check("sit", "seated_time", seated_time, 0.0, 600.0, "s")
    transfer_time = _check("sit", "transfer_time", transfer_time, 1.0, 10.0, "s") * _style(rng)
    down0 = 0.3
    down1 = down0 + transfer_time
    up0 = down1 + seated_time
    up1 = up0 + transfer_time
    duration = up1 + 0.3
    seated_tilt = 0.1
    hip_y = (subject.hip_offset[:, 1] * math.cos(seated_tilt) - subject.hip_offset[:, 2] * math.sin(seated_tilt)).mean()
    drop = _standing_z(subject) - (chair_height - hip_y)
    back = 0.9 * subject.thigh
    lean_peak = 0.35 * _style(rng)
    seated_arm = np.array([[0.0, 0.0, -0.15], [-0.45, 0.0, -1.28], [0.0, -1.0, 0.0]])

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        u_down = np.clip((t - down0) / transfer_time, 0, 1)
        u_up = np.clip((t - up0) / transfer_time, 0, 1)
        backward = ease(u_down / 0.8) - ease((u_up - 0.25) / 0.75)
        lowered = ease((u_down - 0.15) / 0.85) - ease((u_up - 0.15) / 0.85)
        seated = window(t, (down0 + 0.5 * transfer_time, down1), (up0, up0 + 0.5 * transfer_time))
        lean = lean_peak * (bump(u_down) + bump(u_up)) + seated_tilt * seated
        track.pelvis_xy = _body_offset(start, -back * backward, np.zeros_like(t))
        track.pelvis_z -= drop * lowered
        track.euler[:, 0, 0] += lean
        track.euler[:, J("spine1"), 0] += 0.8 * lean_peak * (bump(u_down) + bump(u_up))
        track.euler[:, J("head"), 0] -= 0.3 * lean
        for arm in (0, 1):
            _arm(track, arm, seated_arm, seated)
        return track

    params = dict(chair_height=chair_height, seated_time=seated_time, transfer_time=transfer_time)
    return _segment("sit", subject, start, duration, params, sample)


def _lunge(kind: str, subject: Subject, start: Placement | None, seed, side: str, length: float | None,
           depth: float | None, repetitions: int, hold: float, step_time: float) -> Segment:
    start, rng = start or Placement(), _rng(seed)
    name = f"{kind}_lunge"
    leg = SIDES.index(_choice(name, "side", side, SIDES))
    leg_length = subject.hip_height
    front = kind == "front"
    length = (0.85 if front else 0.5) * leg_length if length is None else length
    length = _check(name, "length", length, 0.2 * leg_length, (1.0 if front else 0.6) * leg_length, "m")
    reach = min(1.0, length / ((0.85 if front else 0.5) * leg_length))     # a short step allows a shallow lunge
    depth = (0.3 if front else 0.2) * leg_length * reach if depth is None else depth
    depth = _check(name, "depth", depth, 0.03, (0.4 if front else 0.3) * leg_length * reach, "m")
    repetitions = int(_check(name, "repetitions", repetitions, 1, 100))
    hold = _check(name, "hold", hold, 0.0, 30.0, "s")
    step_time = _check(name, "step_time", step_time, 0.4, 5.0, "s") * _style(rng)
    lower_time = 1.0 * _style(rng)
    other = 1 - leg
    stand = [standing_foot(subject, s, start.xy, np.float64(start.heading)) for s in (0, 1)]
    outward = 1.0 if leg == 0 else -1.0
    forward, left = (length, 0.0) if front else (0.0, outward * length)
    step_xy = stand[leg][0] + _body_offset(start, np.array([forward]), np.array([left]))[0] - start.xy
    step_heading = float(stand[leg][1]) + (0.0 if front else outward * 0.25)
    plants = [[Plant(-np.inf, np.inf, stand[s][0], float(stand[s][1]))] for s in (0, 1)]
    lowering, t = [], 0.3
    for _ in range(repetitions):
        out_start, landed = t, t + step_time
        down = (landed, landed + lower_time)
        up = (down[1] + hold, down[1] + hold + lower_time)
        back_start, back_end = up[1], up[1] + step_time
        plants[leg][-1] = Plant(plants[leg][-1].start, out_start, stand[leg][0], float(stand[leg][1]), lift=0.06)
        plants[leg] += [Plant(landed, back_start, step_xy, step_heading, lift=0.06),
                        Plant(back_end, np.inf, stand[leg][0], float(stand[leg][1]))]
        lowering.append((out_start, landed, down, up, back_start, back_end))
        t = back_end + 0.4
    duration = t - 0.4 + 0.3
    # Where the pelvis goes at the bottom: between the feet, towards the front (or stepping) foot.
    shift = (0.42 if front else 0.5) * length
    rear_pitch = 1.0 * length / (0.85 * leg_length) + 0.5 * depth / (0.3 * leg_length)

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        _set_feet(track, subject, plants, t)
        across = np.zeros(len(t))
        low = np.zeros(len(t))
        for out_start, landed, down, up, back_start, back_end in lowering:
            # The pelvis travels with the stepping foot and is half-way down when it lands, so the
            # foot lands within the leg's reach; the rest of the way down with both feet planted.
            across += window(t, (out_start, landed), (back_start, back_end))
            low += 0.5 * window(t, (out_start + 0.2 * (landed - out_start), landed),
                                (back_start, back_end - 0.2 * (back_end - back_start)))
            low += 0.5 * window(t, down, up)
        track.pelvis_xy = _body_offset(start, shift * across * (1.0 if front else 0.0),
                                       shift * across * (0.0 if front else outward))
        track.pelvis_z -= depth * low
        if front:
            # The back heel comes up until the back foot stands on its toes.
            pitch = rear_pitch * low
            toe = toe_tip(subject, other, track.ball[:, other], track.foot_heading[:, other])
            track.ball[:, other], track.toe_flex[:, other] = hang_from_toes(
                subject, other, toe, track.foot_heading[:, other], pitch)
            track.foot_pitch[:, other] = pitch
            track.euler[:, 0, 0] += 0.1 * low
        else:
            # The straight leg's foot rolls a little onto its inner edge, its heel lightens.
            track.foot_roll[:, other] = (0.12 if other == 0 else -0.12) * low
            track.foot_pitch[:, other] = 0.1 * low
            track.toe_flex[:, other] = -0.1 * low
            track.euler[:, 0, 0] += 0.35 * low * depth / (0.3 * leg_length)
            track.euler[:, J("spine1"), 0] += 0.15 * low
            track.euler[:, J("head"), 0] -= 0.2 * low
        for arm in (0, 1):        # hands towards the hips
            _arm(track, arm, np.array([[0.0, 0.0, -0.15], [0.3, 0.0, -1.1], [0.0, -1.2, 0.0]]), low)
        return track

    params = dict(side=side, length=length, depth=depth, repetitions=repetitions, hold=hold, step_time=step_time)
    return _segment(f"{name}_{side}", subject, start, duration, params, _within_reach(subject, duration, sample))


def front_lunge(subject: Subject, start: Placement | None = None, seed=None, *, side: str = "left",
                length: float | None = None, depth: float | None = None, repetitions: int = 1,
                hold: float = 0.5, step_time: float = 0.7) -> Segment:
    """Front lunge: step the ``side`` foot forward ``length`` m (default 0.85 leg length), lower
    the pelvis by ``depth`` m (default 0.3 leg length) with the back heel rising, hold, push back
    up and step back; ``repetitions`` times."""
    return _lunge("front", subject, start, seed, side, length, depth, repetitions, hold, step_time)


def side_lunge(subject: Subject, start: Placement | None = None, seed=None, *, side: str = "left",
               length: float | None = None, depth: float | None = None, repetitions: int = 1,
               hold: float = 0.5, step_time: float = 0.7) -> Segment:
    """Side lunge: step the ``side`` foot out sideways ``length`` m (default 0.55 leg length), bend
    that knee to lower the pelvis ``depth`` m (default 0.2 leg length) over it with the other leg
    straight, hold, push back and step in; ``repetitions`` times."""
    return _lunge("side", subject, start, seed, side, length, depth, repetitions, hold, step_time)


def wave(subject: Subject, start: Placement | None = None, seed=None, *, side: str = "right",
         waving_time: float = 2.5, frequency: float = 2.0, amplitude: float = 0.35) -> Segment:
    """Wave: raise the ``side`` hand above the shoulder (upper arm out to the side, forearm up),
    swing the forearm side to side at ``frequency`` Hz by ±``amplitude`` rad for ``waving_time``
    s, lower the arm."""
    start, rng = start or Placement(), _rng(seed)
    arms = _sides("wave", side)
    waving_time = _check("wave", "waving_time", waving_time, 0.5, 60.0, "s")
    frequency = _check("wave", "frequency", frequency, 0.5, 4.0, "Hz") * _style(rng, 0.05)
    amplitude = _check("wave", "amplitude", amplitude, 0.05, 0.6, "rad")
    raise_time = 0.8 * _style(rng)
    spans = [(0.3, 0.3 + raise_time, 0.3 + raise_time + waving_time, 0.3 + 2 * raise_time + waving_time)]
    duration = spans[0][3] + 0.3
    target = np.array([[0.0, 0.0, 0.3], [-1.45, 0.0, 0.0], [0.0, -1.55, 0.0]])
    phase0 = rng.uniform(0, 2 * np.pi)

    def sample(t: np.ndarray) -> Track:
        track = _standing_track(subject, start, t)
        raised = _envelope(t, spans)
        waving = window(t, (spans[0][1] - 0.2, spans[0][1] + 0.2), (spans[0][2] - 0.2, spans[0][2] + 0.2))
        swing = amplitude * np.sin(2 * np.pi * frequency * (t - spans[0][1]) + phase0) * waving
        for arm in arms:
            _arm(track, arm, target, raised)
            track.euler[:, J(f"{SIDES[arm]}_elbow"), 1] += swing if arm == 0 else -swing
        return track

    params = dict(side=side, waving_time=waving_time, frequency=frequency, amplitude=amplitude)
    return _segment(f"wave_{side}", subject, start, duration, params, sample)


MOTIONS: dict[str, Callable[..., Segment]] = {
    "idle": idle, "walk": walk, "turn": turn, "arm_raise": arm_raise, "leg_extension": leg_extension,
    "front_lunge": front_lunge, "side_lunge": side_lunge, "squat": squat, "wave": wave, "sit": sit,
}


def make_motion(name: str, body: BodyModel, betas: np.ndarray | None = None, *, fps: float = 30.0, seed=None,
                start: Placement | None = None, **params) -> Motion:
    """One motion of ``MOTIONS`` by name, rendered for ``body`` with shape ``betas`` (average when
    None) at ``fps``; ``params`` go to the motion (e.g. ``make_motion("walk", body, speed=1.4)``)."""
    if name not in MOTIONS:
        raise ValueError(f"unknown motion {name!r}; known: {', '.join(MOTIONS)}")
    try:
        segment = MOTIONS[name](Subject.of(body, betas), start, seed, **params)
    except TypeError as error:
        raise ValueError(f"{name}: {error}") from None
    return render([segment], fps, name=name)
