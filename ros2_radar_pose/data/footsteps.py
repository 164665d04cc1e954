"""Feet that stay put: footstep plans and the foot trajectories between them.

A foot is either planted (a ``Plant``: its ball of the foot on the floor at a place and heading
over a time span, the heel possibly rising towards the end) or swinging from one plant to the
next: the toe tip travels along a smooth path (leaving and landing at rest) with a lift in the
middle while the heel comes back down. A rising heel first rolls the foot about the ball (the toes
bend to stay flat), then, past what the toes can bend, about the toe tip: the toe tip never moves
while the foot is planted. ``foot_track`` samples all that at any times. ``plan_steps`` makes the
plants of stepping motion (walking, turning on the spot): given where the pelvis is and which way
it faces at any time, each foot lands where it would stand beside the pelvis at the middle of its
stance, at a steady cadence, until both feet stand beside the pelvis's final pose.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ros2_radar_pose.data.curves import bump, ease
from ros2_radar_pose.data.subjects import FOOT, TOE, Subject
from ros2_radar_pose.data.tracks import foot_rotation, soft_clamp

TOE_OUT = 0.08          # rad each foot turns out from the heading when standing (foot progression angle)
TOE_BEND = 0.55         # rad the toes bend (within body/limits.py) while the heel rolls up about the ball
TOE_EASE = 0.15         # rad over which the roll passes smoothly from the ball to the toe tip
SWING_FLATTENS = 0.6    # share of a swing over which a raised heel comes back down
SWING_CURL = 0.3        # how much more the heel rises after lift-off, relative to its lift-off pitch
SWING_CURL_PEAK = 0.2   # share of the swing at which it is highest
SUPPORT_FADE_OUT = 0.05  # share of a swing over which a foot stops bearing weight after lift-off,
SUPPORT_FADE_IN = 0.4    # and over which it starts again before landing (the leg reaches for the floor)


@dataclass(frozen=True)
class Plant:
    """The ball of a foot on the floor at ``xy`` (2,) (world m), facing ``heading`` (rad), from
    ``start`` to ``end`` (s; -inf and inf for a foot planted before or after everything). Over the
    last ``heel_rise`` seconds the heel rises to ``pitch`` rad; the swing after lifts the ball by
    ``lift`` m."""

    start: float
    end: float
    xy: np.ndarray
    heading: float
    heel_rise: float = 0.0
    pitch: float = 0.0
    lift: float = 0.05


@dataclass
class FootTrack:
    """One foot over T samples: ``ball`` (T, 3), ``heading`` (T,), ``pitch`` (T,), ``toe_flex``
    (T,), ``contact`` (T,) bool, ``support`` (T,) how much the leg bears weight, 0 to 1 (1 while
    planted, fading out early in a swing and back in before it lands)."""

    ball: np.ndarray
    heading: np.ndarray
    pitch: np.ndarray
    toe_flex: np.ndarray
    contact: np.ndarray
    support: np.ndarray


def standing_foot(subject: Subject, side: int, xy: np.ndarray, heading: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ball position (..., 2) and heading (...) of foot ``side`` (0 left, 1 right) standing beside a
    pelvis at ``xy`` (..., 2) facing ``heading`` (...): the ankle at its rest place, the foot turned
    out by TOE_OUT about it."""
    heading = np.asarray(heading, dtype=np.float64)
    foot_heading = heading + (TOE_OUT if side == 0 else -TOE_OUT)
    ankle = np.asarray(xy) + _planar(heading, subject.ankle_offset[side])
    ball = subject.ball_from_ankle[side]
    return ankle + _planar(foot_heading, np.array([ball[2], ball[0]])), foot_heading


def _planar(heading: np.ndarray, forward_left: np.ndarray) -> np.ndarray:
    """(..., 2) world offset of a (forward, left) offset in a frame facing ``heading`` (...)."""
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    forward, left = forward_left[..., 0], forward_left[..., 1]
    return np.concatenate([c * forward - s * left, s * forward + c * left], axis=-1)


def foot_track(plants: list[Plant], times: np.ndarray, subject: Subject, side: int) -> FootTrack:
    """Sample foot ``side`` (0 left, 1 right) of ``subject`` following ``plants`` (sorted, not
    overlapping, the first starting at -inf and the last ending at inf) at ``times`` (T,).

    The heel rolls up about the ball of the foot, the toes bending to stay flat, up to nearly
    TOE_BEND; beyond it the whole foot rolls about the toe tip (the ball lifts, the toe tip stays
    put, as at push-off). A swing carries the toe tip from one plant to the next while the heel
    comes down.
    """
    if plants[0].start != -np.inf or plants[-1].end != np.inf:
        raise ValueError("a foot's plants must cover all time: the first starts at -inf, the last ends at inf")
    starts = np.array([p.start for p in plants])
    ends = np.array([p.end for p in plants])
    if np.any(ends[:-1] > starts[1:]) or np.any(ends < starts):
        raise ValueError("a foot's plants overlap or end before they start")
    heading = np.array([p.heading for p in plants])
    rise = np.array([p.heel_rise for p in plants])
    pitch_top = np.array([p.pitch for p in plants])
    lift = np.array([p.lift for p in plants])
    toe_from_ball = subject.rest[TOE[side]] - subject.rest[FOOT[side]]              # canonical
    toe = np.array([p.xy for p in plants]) + _planar(heading, toe_from_ball[[2, 0]][None])
    toe_height = subject.ball_height[side] + toe_from_ball[1]

    t = np.asarray(times, dtype=np.float64)
    now = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(plants) - 1)
    planted = t < ends[now]
    after = np.minimum(now + 1, len(plants) - 1)
    lifted_at = np.where(planted, 0.0, ends[now])
    u = np.where(planted, 0.0, (t - lifted_at) / np.maximum(starts[after] - lifted_at, 1e-9))
    travel = u * u * (3.0 - 2.0 * u)     # a flatter speed profile than ease: a foot leaves briskly
    out_heading = heading[now] + (heading[after] - heading[now]) * travel
    toe_xy = toe[now] + (toe[after] - toe[now]) * travel[:, None]
    toe_z = toe_height + lift[now] * bump(u)
    rising = np.zeros_like(t)
    heel = planted & (rise[now] > 0) & np.isfinite(ends[now])
    rising[heel] = ease((t[heel] - ends[now][heel]) / rise[now][heel] + 1.0)
    # Early in a swing the heel keeps rising (the knee folds the foot up behind), then comes down.
    swinging = 1.0 - ease((u - 0.1) / SWING_FLATTENS) + SWING_CURL * bump(u / (2 * SWING_CURL_PEAK))
    pitch = pitch_top[now] * np.where(planted, rising, swinging)
    ball, toe_flex = hang_from_toes(subject, side, np.concatenate([toe_xy, toe_z[:, None]], axis=1), out_heading, pitch)
    support = np.where(planted, 1.0, 1.0 - ease(u / SUPPORT_FADE_OUT) + ease((u - 1.0) / SUPPORT_FADE_IN + 1.0))
    return FootTrack(ball, out_heading, pitch, toe_flex, planted, support)


def toe_tip(subject: Subject, side: int, ball: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(T, 3) toe tip (big toe) of a flat foot whose ball is at ``ball`` (T, 3), facing ``heading`` (T,)."""
    toe_from_ball = subject.rest[TOE[side]] - subject.rest[FOOT[side]]
    return ball + (foot_rotation(heading, np.zeros_like(heading)) @ toe_from_ball[:, None])[..., 0]


def hang_from_toes(subject: Subject, side: int, toe: np.ndarray, heading: np.ndarray,
                   pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ball position (T, 3) and toe joint angle (T,) of foot ``side`` with its toe tip at ``toe``
    (T, 3), facing ``heading`` (T,), heel raised by ``pitch`` (T,): the toes bend to stay flat up to
    about TOE_BEND, the rest of the pitch tips the whole foot up about the toe tip."""
    toe_from_ball = subject.rest[TOE[side]] - subject.rest[FOOT[side]]
    toe_flex = -soft_clamp(np.maximum(pitch, 0.0), np.full_like(pitch, TOE_BEND), np.full_like(pitch, TOE_EASE))
    tipped = foot_rotation(heading, pitch + toe_flex)
    return toe - (tipped @ toe_from_ball[:, None])[..., 0], toe_flex


@dataclass(frozen=True)
class Gait:
    """Timing and style of stepping. ``stride_frequency`` Hz (a stride is one step of each foot);
    ``duty``: share of a stride a foot is planted; ``mid_stance``: share of its stance at which the
    pelvis passes the place the foot would stand at; ``heel_rise``: share of a stride the heel
    rises before lift-off, to ``pitch`` rad for a full step (shorter steps raise it less);
    ``lift`` m: swing height of a full step; ``full_step`` m: the step length called full."""

    stride_frequency: float
    duty: float = 0.6
    mid_stance: float = 0.35
    heel_rise: float = 0.3
    pitch: float = 0.9
    lift: float = 0.05
    full_step: float = 0.6

    @property
    def swing_time(self) -> float:
        return (1.0 - self.duty) / self.stride_frequency

    @property
    def step_period(self) -> float:
        return 0.5 / self.stride_frequency

    @property
    def heel_rise_time(self) -> float:
        return self.heel_rise / self.stride_frequency


PoseAt = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def plan_steps(subject: Subject, pose_at: PoseAt, start: float, stop: float, gait: Gait,
               first: int, max_steps: int = 100_000) -> tuple[list[list[Plant]], float]:
    """Plants of both feet (left, right) for stepping that begins with foot ``first`` lifting off at
    ``start`` and ends once both feet stand beside the pelvis's pose at ``stop``.

    ``pose_at(times (T,))`` -> pelvis ground position (T, 2) and heading (T,) at any time (held
    before the motion starts and after ``stop``). Steps of less than 2 cm and 2 degrees are
    skipped. Returns the plants and the time the last foot lands.
    """
    if start < gait.heel_rise_time:
        raise ValueError(f"stepping starts at {start:.3f} s, before its first heel rise of "
                         f"{gait.heel_rise_time:.3f} s could begin")
    xy0, heading0 = pose_at(np.array([start]))
    plants: list[list[Plant]] = []
    for side in (0, 1):
        ball, foot_heading = standing_foot(subject, side, xy0[0], heading0[0])
        plants.append([Plant(-np.inf, np.inf, ball, float(foot_heading))])
    done, last_landing = [False, False], start
    for step in range(max_steps):
        if all(done):
            return plants, last_landing
        side = first if step % 2 == 0 else 1 - first
        if done[side]:
            continue
        landing = start + gait.swing_time + step * gait.step_period
        reference = landing + gait.mid_stance * gait.duty / gait.stride_frequency
        xy, heading = pose_at(np.array([reference]))
        ball, foot_heading = standing_foot(subject, side, xy[0], heading[0])
        final = reference >= stop
        current = plants[side][-1]
        distance = float(np.linalg.norm(ball - current.xy))
        turned = abs(float(foot_heading) - current.heading)
        # Skip steps too small to take, but never leave a foot off its final place: segments hand
        # over with both feet exactly where standing puts them.
        if (distance < 0.02 and turned < np.radians(2) and not final) or (distance < 1e-6 and turned < 1e-6):
            done[side] = final
            continue
        full = min(1.0, distance / gait.full_step)
        lift_off = landing - gait.swing_time
        plants[side][-1] = replace(current, end=lift_off, heel_rise=min(gait.heel_rise_time, lift_off - current.start),
                                   pitch=gait.pitch * full, lift=gait.lift * max(full, 0.5))
        plants[side].append(Plant(landing, np.inf, ball, float(foot_heading)))
        last_landing, done[side] = landing, final
    raise ValueError(f"stepping did not settle within {max_steps} steps; is the pelvis pose at `stop` held?")

