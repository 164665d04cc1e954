"""Bags -> labelled recordings -> windows of frames, the examples the student learns from.

Each radar frame is paired with the label skeleton nearest in stamp (data/sync.py, within a
tolerance). Frames without a label stay in the recording (the student still sees them as context)
but take no part in the loss; how many there were is reported per bag, never silently dropped.
A recording is a stretch of frames without a gap longer than ``gap_s``; windows never span two.

Raw clouds (``/radar/points``) go through radar_ingest's preprocessing (radar/preprocess.py, its
default parameters, restarted at each recording) so the student learns from what the student
node will be given (``/radar_pose/points``); ``preprocess=False`` takes the clouds as they are
(for bags that recorded ``/radar_pose/points``).

The label topic's joint set is recognised by its joint count (24 SMPL, 29 HybrIK, 25 Kinect,
19 MARS) and mapped to the student's joint set (body/joint_sets.py). Labels with orientations
(SMPL-24 global rotations, as the teacher publishes) also give the student's extra targets: the
five HybrIK leaf joints (the rest bone of the default body turned by the parent's orientation)
and the twist of each bone (body/hybrik_ik.py ``twist_from_rotations``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ros2_radar_pose import topics
from ros2_radar_pose.body.hybrik_ik import N_TWISTS, skeleton_targets
from ros2_radar_pose.body.joint_sets import JOINT_SETS, SMPL_24, JointSet, by_name, mapping
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.body.rotations import quaternion_to_matrix
from ros2_radar_pose.data.bags import BagError, BagReader
from ros2_radar_pose.data.sync import synchronized
from ros2_radar_pose.radar.preprocess import CloudPreprocessor, PreprocessConfig
from ros2_radar_pose.student.inputs import MAX_POINTS, pack_clouds

JOINT_SET_BY_COUNT = {len(s): s for s in JOINT_SETS.values()}
# What a frame holds where nobody is seen (before a recording's start, or before a person appears).
EMPTY_FRAME = {"points": 0.0, "mask": False, "targets": np.nan, "labelled": False, "twist": np.nan}
# Twist k is joint k + 1's; joint 0 (the root) has none and is its own mirror image.
TWISTS_MIRRORED = [SMPL_24.mirrored[k + 1] - 1 for k in range(N_TWISTS)]


@dataclass
class Recording:
    """A stretch of consecutive radar frames from one bag. ``points`` (T, N, 5), ``mask`` (T, N);
    ``targets`` (T, K, 3) label joints in the radar frame, K = the student's joint set, or HybrIK-29
    when the labels carry orientations; ``labelled`` (T,) bool; ``twist`` (T, 23, 2) or None;
    ``orientations`` (T, 24, 4) the labels' SMPL-24 global orientations (x, y, z, w), or None."""

    bag: Path
    stamps_ns: np.ndarray
    points: np.ndarray
    mask: np.ndarray
    targets: np.ndarray
    labelled: np.ndarray
    twist: np.ndarray | None = None
    orientations: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.stamps_ns)


@dataclass
class BagReport:
    """What one bag gave: frames, labelled frames, the label joint set, and problems."""

    bag: Path
    frames: int = 0
    labelled: int = 0
    recordings: int = 0
    label_joint_set: str = ""
    with_rotations: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def unlabelled(self) -> int:
        return self.frames - self.labelled

    def summary(self) -> str:
        text = (f"{self.bag}: {self.frames} radar frames in {self.recordings} recording(s), {self.labelled} labelled "
                f"({self.label_joint_set or 'no labels'}{', with orientations' if self.with_rotations else ''}), "
                f"{self.unlabelled} without a label within the tolerance")
        return "\n  ".join([text, *self.problems])


def label_joint_set(joint_count: int) -> JointSet:
    try:
        return JOINT_SET_BY_COUNT[joint_count]
    except KeyError:
        known = ", ".join(f"{n} ({s.name})" for n, s in JOINT_SET_BY_COUNT.items())
        raise ValueError(f"label skeletons have {joint_count} joints; known joint counts: {known}") from None


def load_bag(path: str | Path, joint_set: str | JointSet, rotations: bool, points_topic: str = topics.RADAR_POINTS,
             label_topic: str = topics.TEACHER_SKELETON, tolerance_s: float = 0.05, gap_s: float = 1.0,
             max_points: int = MAX_POINTS, preprocess: bool = True) -> tuple[list[Recording], BagReport]:
    """The labelled recordings of one bag and its report. A damaged bag gives what it has up to
    the damage (the problem is in the report); a bag that cannot be used at all (missing topics,
    wrong types, labels of an unmappable joint set) raises BagError or ValueError."""
    path = Path(path)
    joint_set = by_name(joint_set)
    report = BagReport(path)
    stamps, clouds, labels, quats = [], [], [], []
    with BagReader(path) as reader:
        report.problems += reader.problems
        if label_topic not in reader.topics:
            raise BagError(path, f"has no label topic {label_topic}; its topics: {', '.join(sorted(reader.topics))}")
        try:
            for record in synchronized(reader, points_topic, [label_topic], tolerance_s):
                stamps.append(record.stamp_ns)
                clouds.append(record.primary.cloud)
                label = record.skeletons[label_topic]
                labels.append(None if label is None else label.positions)
                quats.append(None if label is None else label.rotations)
        except BagError as error:
            if not stamps:
                raise
            report.problems.append(f"damaged: {error}; the {len(stamps)} frames before it are used")
    report.frames = len(stamps)
    found = [label for label in labels if label is not None]
    if not found:
        return [], report
    counts = {len(label) for label in found}
    if len(counts) > 1:
        raise BagError(path, f"label skeletons on {label_topic} have different joint counts {sorted(counts)}")
    source = label_joint_set(counts.pop())
    report.label_joint_set = source.name
    labelled = np.array([label is not None for label in labels])
    report.labelled = int(labelled.sum())
    raw_positions = np.full((len(labels), len(source), 3), np.nan, dtype=np.float32)
    raw_positions[labelled] = np.stack(found)
    raw_rotations = np.tile(np.array([0, 0, 0, 1], np.float32), (len(labels), len(source), 1))
    raw_rotations[labelled] = np.stack([q for q in quats if q is not None])
    report.with_rotations = source.name == "smpl_24" and bool(
        (np.abs(raw_rotations[labelled][..., :3]) > 1e-6).any())
    if rotations and not report.with_rotations:
        raise ValueError(f"{path}: the student predicts orientations, but the labels on {label_topic} "
                         f"({source.name}) carry none; train a joint set without rotations (e.g. "
                         f"--joint-set {source.name} --no-rotations) or use labels with orientations")
    if rotations:
        targets, twist = _rotation_targets(raw_positions, raw_rotations, labelled)
    else:
        targets, twist = mapping(source, joint_set).apply(raw_positions).astype(np.float32), None
    stamps = np.asarray(stamps, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(stamps) > gap_s * 1e9) + 1
    parts = np.split(np.arange(len(stamps)), breaks)
    if preprocess:
        clouds = preprocessed(clouds, stamps, parts)
    points, mask = pack_clouds(clouds, max_points)
    recordings = []
    for part in parts:
        if labelled[part].any():
            recordings.append(Recording(path, stamps[part], points[part], mask[part], targets[part], labelled[part],
                                        None if twist is None else twist[part],
                                        raw_rotations[part] if report.with_rotations else None))
    report.recordings = len(recordings)
    return recordings, report


def preprocessed(clouds: list[np.ndarray], stamps_ns: np.ndarray, parts: list[np.ndarray],
                 config: PreprocessConfig | None = None) -> list[np.ndarray]:
    """The person's cloud of each frame, as radar_ingest gives it, restarted at each recording."""
    out = []
    for part in parts:
        preprocessor = CloudPreprocessor(config or PreprocessConfig())
        out += [preprocessor.process(clouds[t], stamps_ns[t] * 1e-9).cloud for t in part]
    return out


def _rotation_targets(positions: np.ndarray, rotations: np.ndarray, labelled: np.ndarray):
    """SMPL-24 positions (T, 24, 3) and global orientations (T, 24, 4) -> HybrIK-29 targets
    (T, 29, 3) and twists (T, 23, 2), from the default body's rest pose."""
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4, dtype=torch.float64))              # (1, 29, 3)
    global_rot = quaternion_to_matrix(torch.as_tensor(rotations, dtype=torch.float64))         # (T, 24, 3, 3)
    targets, twist = skeleton_targets(torch.as_tensor(positions, dtype=torch.float64), global_rot, rest)
    targets = targets.float().numpy()
    targets[:, :24] = positions
    twist = twist.float().numpy()
    twist[~labelled] = np.nan
    return targets, twist


def load_bags(paths: Sequence[str | Path], joint_set: str | JointSet, rotations: bool,
              log: Callable[[str], None] = print, **options) -> list[Recording]:
    """Recordings of every bag (see ``load_bag`` for ``options``), each bag's report logged.
    Raises ValueError when no bag gives a labelled frame."""
    recordings = []
    for path in paths:
        found, report = load_bag(path, joint_set, rotations, **options)
        log(report.summary())
        recordings += found
    if not recordings:
        raise ValueError(f"no labelled radar frames in {', '.join(map(str, paths))}")
    return recordings


@dataclass(frozen=True)
class Augment:
    """Random changes to a training window, the same for all its frames. Angles in degrees,
    lengths in metres; ``None`` (module constant NO_AUGMENT) changes nothing."""

    yaw_deg: float = 30.0             # rotation about the vertical axis through the radar
    shift_m: float = 0.3              # horizontal translation (standard deviation)
    scale: float = 0.08               # body size, about the feet below the root: uniform in 1 ± scale
    point_dropout: float = 0.1        # chance each point is dropped
    jitter_m: float = 0.01            # Gaussian noise on x, y, z
    jitter_velocity: float = 0.05     # ... on radial velocity (m/s)
    jitter_intensity: float = 1.0     # ... on intensity (dB)
    ghosts: float = 1.0               # mean number of ghost points added per frame (Poisson)
    mirror: float = 0.0               # chance of a mirror image: y -> -y (the radar's left and right), joints
                                      # and twists of the left and right limbs trade places
    appear: float = 0.0               # chance the person comes into view within the stretch: the frames before
                                      # a random one lose their points and labels, as a recording's first do


NO_AUGMENT = Augment(**{f.name: 0.0 for f in fields(Augment)})     # every field, however many there are


class WindowDataset(torch.utils.data.Dataset):
    """Examples of ``windows`` consecutive windows of ``window`` frames: a stretch of
    ``window + windows - 1`` frames, each encoded once by the student (``RadarPoseStudent.forward``
    cuts it into its windows). Stretches end every ``windows`` frames from a recording's end, so
    each frame is the newest of exactly one window per epoch; those holding no labelled newest
    frame are left out. Frames before a recording's start are empty, as streaming starts.

    Example ``i`` of epoch ``e`` is augmented with a generator seeded by (seed, e, i), so an epoch
    is the same whichever worker or process makes it, and resumed training sees exactly what it
    would have seen."""

    def __init__(self, recordings: Sequence[Recording], window: int, augment: Augment | None = None, seed: int = 0,
                 windows: int = 1):
        if window < 1 or windows < 1:
            raise ValueError("window and windows must be >= 1")
        self.recordings, self.window, self.windows = list(recordings), window, windows
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.length = window + windows - 1
        ends = []
        for r, rec in enumerate(self.recordings):
            for t in range(len(rec) - 1, -1, -windows):
                if rec.labelled[max(t + 1 - windows, 0):t + 1].any():
                    ends.append((r, t))
        self.index = np.array(sorted(ends), dtype=np.int64).reshape(-1, 2)       # in time order
        self.with_twist = bool(self.recordings) and all(rec.twist is not None for rec in self.recordings)
        joints = self.recordings[0].targets.shape[1] if self.recordings else 0
        self.mirrored = JOINT_SET_BY_COUNT[joints].mirrored if augment and augment.mirror > 0 else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, t = self.index[i]
        rec = self.recordings[r]
        start = t + 1 - self.length
        frames = slice(max(start, 0), t + 1)
        pad = max(-start, 0)

        def padded(array: np.ndarray, fill) -> np.ndarray:
            if not pad:
                return array[frames].copy()
            out = np.full((self.length, *array.shape[1:]), fill, dtype=array.dtype)
            out[pad:] = array[frames]
            return out

        keys = ("points", "mask", "targets", "labelled") + (("twist",) if self.with_twist else ())
        example = {key: padded(getattr(rec, key), EMPTY_FRAME[key]) for key in keys}
        if self.augment is not None and self.augment != NO_AUGMENT:
            _augment(example, self.augment, np.random.default_rng([self.seed, self.epoch, int(i)]), self.mirrored)
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in example.items()}


def _augment(example: dict[str, np.ndarray], aug: Augment, rng: np.random.Generator,
             mirrored: tuple[int, ...] | None = None) -> None:
    if aug.mirror > 0 and rng.random() < aug.mirror:     # no draw without mirroring: old runs stay as they were
        _mirror(example, mirrored)
    points, mask, targets = example["points"], example["mask"], example["targets"]
    angle = np.deg2rad(rng.uniform(-aug.yaw_deg, aug.yaw_deg))
    c, s = np.cos(angle), np.sin(angle)
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    shift = np.array([*rng.normal(0.0, aug.shift_m, 2), 0.0], dtype=np.float32)
    scale = np.float32(rng.uniform(1 - aug.scale, 1 + aug.scale))
    labelled = example["labelled"].any()
    centre = np.nanmean(targets[:, 0], axis=0) if labelled else np.zeros(3, np.float32)
    # Scale about the feet (the window's lowest joint), not the radar's height (z = 0 in the radar
    # frame): a smaller person stands on the same floor, lower at the head, not raised at the feet.
    feet = np.nanmin(targets[..., 2]) if labelled else 0.0
    centre = np.array([centre[0], centre[1], feet], dtype=np.float32)

    def move(xyz: np.ndarray) -> np.ndarray:
        return ((xyz - centre) * scale + centre) @ turn.T + shift

    example["targets"] = move(targets)
    xyz = move(points[..., :3])
    mask &= rng.random(mask.shape) >= aug.point_dropout
    xyz += rng.normal(0.0, aug.jitter_m, xyz.shape).astype(np.float32)
    points[..., 3] += rng.normal(0.0, aug.jitter_velocity, mask.shape).astype(np.float32)
    points[..., 4] += rng.normal(0.0, aug.jitter_intensity, mask.shape).astype(np.float32)
    points[..., :3] = xyz
    # Ghosts: points near the person (multipath, clutter) in free slots, with weak intensity.
    root = np.nanmean(example["targets"][:, 0], axis=0) if labelled else None
    for frame, count in enumerate(rng.poisson(aug.ghosts, len(mask))):
        free = np.flatnonzero(~mask[frame])[:count]
        if len(free) and labelled:
            points[frame, free, :3] = root + rng.normal(0.0, [0.8, 0.8, 0.6], (len(free), 3))
            points[frame, free, 3] = rng.normal(0.0, 0.5, len(free))
            points[frame, free, 4] = rng.uniform(5.0, 15.0, len(free))
            mask[frame, free] = True
    if aug.appear > 0 and rng.random() < aug.appear:     # no draw without it: old runs stay as they were
        _not_yet_seen(example, int(rng.integers(1, len(mask))))
    points[~mask] = 0.0


def _not_yet_seen(example: dict[str, np.ndarray], first: int) -> None:
    """Empty the frames before ``first``, as padding before a recording's start: the streaming
    student's first windows after a person comes into view hold frames without points, and only
    the recordings' first seconds would teach it those otherwise."""
    for key, array in example.items():
        array[:first] = EMPTY_FRAME[key]


def _mirror(example: dict[str, np.ndarray], mirrored: tuple[int, ...]) -> None:
    """The window's mirror image in the radar's x-z plane (y -> -y): radial velocity and intensity
    are the same for the image, the left and right joints trade places and each twist turns the
    other way (a reflection reverses the sense of rotation about the mirrored bone)."""
    example["points"][..., 1] *= -1
    example["targets"] = example["targets"][:, list(mirrored)] * np.array([1.0, -1.0, 1.0], np.float32)
    if "twist" in example:
        example["twist"] = example["twist"][:, TWISTS_MIRRORED] * np.array([1.0, -1.0], np.float32)
