"""What a motion asks of the body frame by frame, and how that becomes SMPL rotations.

A motion is written as a ``Track``: where the pelvis goes, which way the body faces, the local
Euler angles of the trunk, head and arms, and where each foot is (its ball, heading, heel lift)
and whether it is planted. ``solve`` turns it into SMPL-24 local rotations and a translation:

- the root rotation is the heading about world z times the fixed turn from SMPL's canonical frame
  into REP-103 axes, times the pelvis's own tilt (``euler[:, 0]``);
- each foot's ankle target follows from its ball position and orientation, and the legs are
  solved by analytic IK (data/leg_ik.py), so a planted foot is exactly where the track puts it:
  it cannot slide, and it stands on the floor because the track puts it there;
- the pelvis height is the track's, softly clamped below the height the weight-bearing legs
  reach (a safety net: motions that step plan their pelvis height within reach beforehand,
  data/motions.py), and a foot in the air that the leg cannot reach is drawn in towards the hip.
  The soft clamp leaves a height untouched while it is ``softness`` or more under the limit and
  bends it smoothly under it otherwise, so legs never overstretch and knees never snap straight.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from ros2_radar_pose.body.rotations import euler_to_matrix
from ros2_radar_pose.data.leg_ik import CANONICAL_TO_WORLD, LegChain, rotation_x, rotation_z
from ros2_radar_pose.data.subjects import ANKLE, HIP, KNEE, SIDES, Subject

# SMPL_24 indices of the joints the leg IK sets, left then right.
HIP_JOINT, KNEE_JOINT, ANKLE_JOINT, TOE_JOINT = (1, 2), (4, 5), (7, 8), (10, 11)
UNBEARING_SLACK = 1.0      # m added to the reach height of a leg that bears no weight: out of the min
SWING_SLACK = 0.003        # m, the soft clamp's width on the length of a leg in the air


@dataclass
class Track:
    """A motion's requests at T sample times (float64 arrays unless said).

    ``pelvis_xy`` (T, 2) world m; ``pelvis_z`` (T,) asked pelvis height (may be lowered to keep the
    legs in reach); ``heading`` (T,) rad, the body's facing direction about world z (0: +x);
    ``euler`` (T, 24, 3) local intrinsic XYZ Euler angles of every SMPL joint in SMPL's convention,
    the pelvis entry being its tilt in the body's own frame; hips, knees, ankles and toes are
    solved, their entries ignored. Per foot, left then right: ``ball`` (T, 2, 3) world position of
    the ball of the foot, ``foot_heading`` (T, 2) rad, ``foot_pitch`` (T, 2) heel-up rotation about
    the foot's own left axis (rad; 0 flat), ``foot_roll`` (T, 2) rotation about its forward axis
    (rad, positive lifts the left edge), ``toe_flex`` (T, 2) toe joint angle about its x axis,
    ``contact`` (T, 2) bool planted, ``support`` (T, 2) in [0, 1] how much the leg bears
    weight (1 whenever planted). ``softness`` (T,) m, the reach clamp's width.
    """

    pelvis_xy: np.ndarray
    pelvis_z: np.ndarray
    heading: np.ndarray
    euler: np.ndarray
    ball: np.ndarray
    foot_heading: np.ndarray
    foot_pitch: np.ndarray
    foot_roll: np.ndarray
    toe_flex: np.ndarray
    contact: np.ndarray
    support: np.ndarray
    softness: np.ndarray

    def __len__(self) -> int:
        return len(self.heading)

    @classmethod
    def concatenate(cls, tracks: list[Track]) -> Track:
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tracks]) for f in fields(cls)})


def foot_rotation(heading: np.ndarray, pitch: np.ndarray, roll: np.ndarray | None = None) -> np.ndarray:
    """(..., 3, 3) global rotation of an ankle whose foot points along ``heading`` with the heel
    raised by ``pitch`` and rolled by ``roll`` (a flat foot has its rest orientation turned to
    ``heading``)."""
    rotation = rotation_z(heading) @ CANONICAL_TO_WORLD @ rotation_x(pitch)
    return rotation if roll is None else rotation @ rotation_z(roll)


def ankle_targets(track: Track, subject: Subject) -> np.ndarray:
    """(T, 2, 3) world ankle positions from the balls and foot orientations."""
    rotation = foot_rotation(track.foot_heading, track.foot_pitch, track.foot_roll)   # (T, 2, 3, 3)
    return track.ball - (rotation @ subject.ball_from_ankle[:, :, None])[..., 0]


def soft_min(a: np.ndarray, b: np.ndarray, width: np.ndarray) -> np.ndarray:
    """A smooth minimum never above min(a, b): min(a, b) - width log(1 + exp(-|a - b| / width))."""
    return np.minimum(a, b) - width * np.log1p(np.exp(-np.abs(a - b) / width))


def soft_clamp(value: np.ndarray, limit: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``value`` where it is ``width`` or more below ``limit``; above that, limit - width + width
    tanh(excess / width), which stays below ``limit`` (continuous to the second derivative)."""
    knee = limit - width
    excess = np.maximum(value - knee, 0.0)
    return np.where(value <= knee, value, knee + width * np.tanh(excess / width))


@dataclass
class SolvedTrack:
    """``local_rotations`` (T, 24, 3, 3), ``translation`` (T, 3): the body model's inputs; ``pelvis``
    (T, 3) world pelvis; all float64."""

    local_rotations: np.ndarray
    translation: np.ndarray
    pelvis: np.ndarray


def _legs(subject: Subject) -> list[LegChain]:
    return [LegChain(subject.rest[KNEE[s]] - subject.rest[HIP[s]], subject.rest[ANKLE[s]] - subject.rest[KNEE[s]])
            for s in range(2)]


def _root_rotation(track: Track, local: np.ndarray) -> np.ndarray:
    return rotation_z(track.heading) @ CANONICAL_TO_WORLD @ local


def _reach_heights(track: Track, subject: Subject, pelvis_rotation: np.ndarray, ankles: np.ndarray,
                   margin: float, times: np.ndarray | None = None) -> list[np.ndarray]:
    """Per leg (T,): the highest pelvis at which the hip is ``margin`` m inside the leg's reach of
    its ankle target. Raises ValueError where a weight-bearing foot is out of reach horizontally."""
    hip_offset = (pelvis_rotation[:, None] @ subject.hip_offset[None, :, :, None])[..., 0]      # (T, 2, 3)
    heights = []
    for side, chain in enumerate(_legs(subject)):
        hip_xy = track.pelvis_xy + hip_offset[:, side, :2]
        horizontal = np.linalg.norm(ankles[:, side, :2] - hip_xy, axis=-1)
        spare = (chain.reach - margin) ** 2 - horizontal ** 2
        bearing = track.support[:, side] > 0
        if np.any(bearing & (spare <= 0)):
            frame = int(np.argmax(bearing & (spare <= 0)))
            when = f"at t = {times[frame]:.3f} s" if times is not None else f"in frame {frame}"
            raise ValueError(f"the {SIDES[side]} foot is asked to be {horizontal[frame]:.3f} m from its hip "
                             f"horizontally {when}, beyond the leg's reach of {chain.reach:.3f} m")
        heights.append(ankles[:, side, 2] + np.sqrt(np.maximum(spare, 0.0)) - hip_offset[:, side, 2])
    return heights


def bearing_reach(track: Track, subject: Subject, margin: float) -> np.ndarray:
    """(T,) the highest pelvis at which every leg bearing some weight (``support`` > 0: planted, or
    about to land) reaches its foot with ``margin`` m of length to spare (inf where none does)."""
    with torch.no_grad():
        tilt = euler_to_matrix(torch.from_numpy(np.ascontiguousarray(track.euler[:, 0], dtype=np.float64))).numpy()
    heights = _reach_heights(track, subject, _root_rotation(track, tilt), ankle_targets(track, subject), margin)
    return np.min([np.where(track.support[:, side] > 0, h, np.inf) for side, h in enumerate(heights)], axis=0)


def solve(track: Track, subject: Subject, times: np.ndarray | None = None) -> SolvedTrack:
    """SMPL local rotations and translation putting ``subject`` where ``track`` asks (see module).

    Raises ValueError if a foot is asked to be farther from its hip horizontally than the leg
    reaches (``times`` (T,), when given, name the first such frame by its time).
    """
    n = len(track)
    with torch.no_grad():
        local = euler_to_matrix(torch.from_numpy(np.ascontiguousarray(track.euler, dtype=np.float64))).numpy()
    pelvis_rotation = _root_rotation(track, local[:, 0])
    hip_offset = (pelvis_rotation[:, None] @ subject.hip_offset[None, :, :, None])[..., 0]      # (T, 2, 3)
    ankles = ankle_targets(track, subject)
    chains = _legs(subject)
    # A leg bears on the pelvis height only as much as it bears weight.
    heights = _reach_heights(track, subject, pelvis_rotation, ankles, 0.0, times)
    heights = [h + (1.0 - track.support[:, side]) * UNBEARING_SLACK for side, h in enumerate(heights)]
    limit = soft_min(heights[0], heights[1], track.softness)
    pelvis = np.concatenate([track.pelvis_xy, soft_clamp(track.pelvis_z, limit, track.softness)[:, None]], axis=1)
    # A foot in the air goes where the leg can take it: out-of-reach targets are drawn in towards
    # the hip, softly, so the knee never snaps straight.
    for side, chain in enumerate(chains):
        airborne = 1.0 - track.support[:, side]
        if not np.any(airborne > 0):
            continue
        hip = pelvis + hip_offset[:, side]
        leg = ankles[:, side] - hip
        length = np.linalg.norm(leg, axis=-1)
        drawn = soft_clamp(length, np.full_like(length, chain.reach), np.full_like(length, SWING_SLACK))
        ankles[:, side] = hip + leg * (1.0 - airborne * (1.0 - drawn / length))[:, None]

    local[:, 0] = pelvis_rotation
    feet = foot_rotation(track.foot_heading, track.foot_pitch, track.foot_roll)
    for side, chain in enumerate(chains):
        heading = track.foot_heading[:, side]
        knee_direction = np.stack([np.cos(heading), np.sin(heading), np.zeros_like(heading)], axis=-1)
        hip, knee, ankle = chain.solve(pelvis_rotation, pelvis + hip_offset[:, side], ankles[:, side], feet[:, side],
                                       knee_direction)
        local[:, HIP_JOINT[side]] = hip
        local[:, KNEE_JOINT[side]] = knee
        local[:, ANKLE_JOINT[side]] = ankle
        local[:, TOE_JOINT[side]] = rotation_x(track.toe_flex[:, side])
    assert local.shape == (n, 24, 3, 3)
    return SolvedTrack(local, pelvis - subject.rest[0], pelvis)

