"""Joint sets (names and kinematic trees) and linear mappings between them.

- SMPL_24: the SMPL body joints; the order of every skeleton PoseArray of this package.
- HYBRIK_29: SMPL_24 plus five leaf joints (head top, middle fingertips, big toes) that give
  the end bones a direction, so HybrIK's IK can solve every SMPL rotation.
- KINECT_25: Microsoft Kinect V2 joints, in Kinect's order (the MARS dataset's labels).
- MARS_19: the 19 Kinect joints the MARS paper scores (no hands, hand tips or thumbs), in
  Kinect's order.

A mapping is a weight matrix: each target joint is a weighted sum of source joints (weights of a
row sum to 1, so mappings commute with translation), and a model trained on one joint set can be
scored on another. Where two sets do not put a joint at the same anatomical point, the mapping
says how it is approximated in ``notes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class JointSet:
    """Joint names and the parent of each joint (-1 at the single root)."""

    name: str
    names: tuple[str, ...]
    parents: tuple[int, ...]

    def __post_init__(self):
        if len(self.names) != len(self.parents) or list(self.parents).count(-1) != 1:
            raise ValueError(f"{self.name}: one parent per joint and exactly one root")
        for joint in range(len(self.parents)):       # every joint reaches the root: no cycles
            seen, node = set(), joint
            while node >= 0:
                if node in seen:
                    raise ValueError(f"{self.name}: the tree has a cycle through {self.names[node]}")
                seen.add(node)
                node = self.parents[node]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(parent, child) index pairs."""
        return [(p, j) for j, p in enumerate(self.parents) if p >= 0]

    @property
    def depths(self) -> tuple[int, ...]:
        """Number of bones between each joint and the root."""
        def depth(joint: int) -> int:
            return 0 if self.parents[joint] < 0 else 1 + depth(self.parents[joint])
        return tuple(depth(j) for j in range(len(self)))

    @property
    def mirrored(self) -> tuple[int, ...]:
        """For each joint, the index of its mirror image: left and right joints trade places, the
        midline keeps its own (``left_hip`` <-> ``right_hip``, ``HipLeft`` <-> ``HipRight``)."""
        def other_side(name: str) -> str:
            for left, right in (("left", "right"), ("Left", "Right")):
                if left in name:
                    return name.replace(left, right)
                if right in name:
                    return name.replace(right, left)
            return name
        return tuple(self.index(other_side(n)) for n in self.names)

    def subset(self, name: str, names: tuple[str, ...]) -> JointSet:
        """The joints ``names`` (in that order), each parented to its nearest kept ancestor."""
        def kept_ancestor(joint: int) -> int:
            parent = self.parents[joint]
            while parent >= 0 and self.names[parent] not in names:
                parent = self.parents[parent]
            return -1 if parent < 0 else names.index(self.names[parent])
        return JointSet(name, names, tuple(kept_ancestor(self.index(n)) for n in names))


SMPL_24 = JointSet("smpl_24", (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
), (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21))

# The leaves are SMPL mesh vertices 411, 2445, 5905, 3216 and 6617, as in HybrIK.
HYBRIK_29 = JointSet("hybrik_29", SMPL_24.names + (
    "head_top", "left_middle_tip", "right_middle_tip", "left_big_toe", "right_big_toe",
), SMPL_24.parents + (15, 22, 23, 10, 11))

# Thumbs hang from the wrists, hand tips from the hands (the Kinect SDK's bone list).
KINECT_25 = JointSet("kinect_25", (
    "SpineBase", "SpineMid", "Neck", "Head", "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HipLeft", "KneeLeft", "AnkleLeft",
    "FootLeft", "HipRight", "KneeRight", "AnkleRight", "FootRight", "SpineShoulder", "HandTipLeft",
    "ThumbLeft", "HandTipRight", "ThumbRight",
), (-1, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 6, 11, 10))

MARS_19 = KINECT_25.subset("mars_19", tuple(
    n for n in KINECT_25.names
    if n not in ("HandLeft", "HandRight", "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight")))


@dataclass(frozen=True)
class JointMapping:
    """``target joints = weights @ source joints``; ``notes[name]`` says how a target joint is
    approximated (absent: the same anatomical point, or a selection)."""

    source: JointSet
    target: JointSet
    weights: np.ndarray            # (len(target), len(source))
    notes: dict[str, str] = field(default_factory=dict)

    def apply(self, joints):
        """Map (..., len(source), 3) joints, NumPy or torch, to (..., len(target), 3)."""
        if hasattr(joints, "new_tensor"):     # a torch tensor (torch is not imported here)
            return joints.new_tensor(self.weights).matmul(joints)
        return np.einsum("ts,...sd->...td", self.weights, joints)

    def then(self, other: JointMapping) -> JointMapping:
        """This mapping followed by ``other``."""
        if self.target != other.source:
            raise ValueError(f"cannot follow {self.target.name} -> ... with {other.source.name} -> ...")
        notes = dict(other.notes)
        for row, name in enumerate(other.target.names):     # carry the notes of the joints used
            used = [self.notes[self.target.names[s]] for s in np.flatnonzero(other.weights[row])
                    if self.target.names[s] in self.notes]
            if used:
                notes[name] = "; ".join(filter(None, [notes.get(name), *used]))
        return JointMapping(self.source, other.target, other.weights @ self.weights, notes)


def _mapping(source: JointSet, target: JointSet, recipe: dict[str, str | dict[str, float]],
             notes: dict[str, str] | None = None) -> JointMapping:
    """Build a mapping; a target joint absent from ``recipe`` is the source joint of its name."""
    weights = np.zeros((len(target), len(source)))
    for row, name in enumerate(target.names):
        terms = recipe.get(name, name)
        for joint, weight in ({terms: 1.0} if isinstance(terms, str) else terms).items():
            weights[row, source.index(joint)] = weight
    assert np.allclose(weights.sum(axis=1), 1.0), f"{source.name} -> {target.name}: rows must sum to 1"
    return JointMapping(source, target, weights, dict(notes or {}))


def _selection(source: JointSet, target: JointSet) -> JointMapping:
    return _mapping(source, target, {})


SMPL24_TO_MARS19 = _mapping(SMPL_24, MARS_19, {
    "SpineBase": "pelvis", "SpineMid": "spine2", "Neck": {"neck": 0.5, "head": 0.5}, "Head": "head",
    "ShoulderLeft": "left_shoulder", "ElbowLeft": "left_elbow", "WristLeft": "left_wrist",
    "ShoulderRight": "right_shoulder", "ElbowRight": "right_elbow", "WristRight": "right_wrist",
    "HipLeft": "left_hip", "KneeLeft": "left_knee", "AnkleLeft": "left_ankle", "FootLeft": "left_foot",
    "HipRight": "right_hip", "KneeRight": "right_knee", "AnkleRight": "right_ankle", "FootRight": "right_foot",
    "SpineShoulder": "neck",
}, notes={
    "SpineBase": "SMPL pelvis sits a few cm above Kinect's SpineBase (hip centre)",
    "SpineMid": "SMPL spine2 (lower thorax) for Kinect's mid-spine",
    "Neck": "midway between SMPL neck (neck base) and head (skull base)",
    "Head": "SMPL head is the skull base; Kinect's Head is the head's centre, a few cm higher",
    "SpineShoulder": "SMPL neck (base of the neck, C7) for Kinect's SpineShoulder",
    "FootLeft": "SMPL foot is the ball of the foot; Kinect's foot point is near the toes",
    "FootRight": "SMPL foot is the ball of the foot; Kinect's foot point is near the toes",
})

MARS19_TO_SMPL24 = _mapping(MARS_19, SMPL_24, {
    "pelvis": "SpineBase", "left_hip": "HipLeft", "right_hip": "HipRight",
    "spine1": {"SpineBase": 2 / 3, "SpineMid": 1 / 3}, "left_knee": "KneeLeft", "right_knee": "KneeRight",
    "spine2": "SpineMid", "left_ankle": "AnkleLeft", "right_ankle": "AnkleRight",
    "spine3": {"SpineMid": 0.5, "SpineShoulder": 0.5}, "left_foot": "FootLeft", "right_foot": "FootRight",
    "neck": "SpineShoulder", "left_collar": {"SpineShoulder": 0.5, "ShoulderLeft": 0.5},
    "right_collar": {"SpineShoulder": 0.5, "ShoulderRight": 0.5}, "head": "Head",
    "left_shoulder": "ShoulderLeft", "right_shoulder": "ShoulderRight", "left_elbow": "ElbowLeft",
    "right_elbow": "ElbowRight", "left_wrist": "WristLeft", "right_wrist": "WristRight",
    "left_hand": {"WristLeft": 1.25, "ElbowLeft": -0.25}, "right_hand": {"WristRight": 1.25, "ElbowRight": -0.25},
}, notes={
    "pelvis": "Kinect SpineBase (hip centre), a few cm below SMPL's pelvis",
    "spine1": "a third of the way from SpineBase to SpineMid",
    "spine3": "midway between SpineMid and SpineShoulder",
    "neck": "Kinect SpineShoulder (base of the neck)",
    "left_collar": "midway between SpineShoulder and ShoulderLeft",
    "right_collar": "midway between SpineShoulder and ShoulderRight",
    "head": "Kinect Head (head centre) for SMPL's skull base",
    "left_hand": "MARS-19 has no hand: the forearm extended by a quarter past the wrist",
    "right_hand": "MARS-19 has no hand: the forearm extended by a quarter past the wrist",
    "left_foot": "Kinect's foot point for SMPL's ball of the foot",
    "right_foot": "Kinect's foot point for SMPL's ball of the foot",
})

KINECT25_TO_MARS19 = _selection(KINECT_25, MARS_19)
HYBRIK29_TO_SMPL24 = _selection(HYBRIK_29, SMPL_24)

_MAPPINGS = {(m.source.name, m.target.name): m for m in (
    SMPL24_TO_MARS19, MARS19_TO_SMPL24, KINECT25_TO_MARS19, HYBRIK29_TO_SMPL24,
    HYBRIK29_TO_SMPL24.then(SMPL24_TO_MARS19), KINECT25_TO_MARS19.then(MARS19_TO_SMPL24))}
JOINT_SETS = {s.name: s for s in (SMPL_24, HYBRIK_29, KINECT_25, MARS_19)}


def by_name(joint_set: JointSet | str) -> JointSet:
    """The joint set called ``joint_set`` ("smpl_24", "hybrik_29", "kinect_25", "mars_19")."""
    if isinstance(joint_set, JointSet):
        return joint_set
    try:
        return JOINT_SETS[joint_set]
    except KeyError:
        raise ValueError(f"unknown joint set {joint_set!r}; known: {', '.join(JOINT_SETS)}") from None


def mapping(source: JointSet | str, target: JointSet | str) -> JointMapping:
    """The mapping from ``source`` to ``target`` joints (identity when they are the same set)."""
    source, target = by_name(source), by_name(target)
    if source == target:
        return _selection(source, target)
    try:
        return _MAPPINGS[(source.name, target.name)]
    except KeyError:
        raise ValueError(f"no mapping from {source.name} to {target.name}; known: "
                         f"{', '.join(f'{a} -> {b}' for a, b in _MAPPINGS)}") from None
