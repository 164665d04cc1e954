"""The MARS mmWave pose dataset: TI IWR1443 point clouds with Kinect V2 skeletons, frame by frame.

MARS (An & Ogras, "MARS: mmWave-based Assistive Rehabilitation System for Smart Healthcare", ACM
TECS 20(5s), 2021; MIT licence) lays its csv.gz files out as
``{variant}/subject{k}/{radar,kinect}_data_{split}.csv.gz`` under a root folder. ``variant`` is
``woutlier`` (raw clouds) or ``wooutlier`` (outliers removed). ``load_mars`` reads one radar file
and its Kinect file into a ``MarsRecording`` in this package's conventions.

What the files hold (checked on subjects 1 and 3, splits validate and test, both variants):

- radar csv: one row per point, columns ``Frame #,# Obj,X,Y,Z,Doppler,Intensity,Abs Time``. The
  rows of a frame are contiguous and frame numbers increase. Inside a movement they step by 1,
  with gaps of 2 to 6 frames a few percent of the time (frames the files have no row for). Between
  the ten movements they jump by about 1000 to 5600 frames.
- Every frame in the files has at least one point: a frame with no point has no radar row and no
  Kinect row either, so a recording never holds an empty cloud. In ``wooutlier``, frames whose
  points were all outliers are gone together with their Kinect rows (up to 12 per file).
- ``# Obj`` is constant within a frame. In ``woutlier`` it is the frame's row count; in
  ``wooutlier`` it is still the count before outlier removal, so it can exceed the row count.
- X, Y, Z: metres on a 1/1024 m grid. X points right (a subject facing the radar has the left
  shoulder at larger X), Y is the depth along boresight (subjects stand about 1.95 m away), Z is
  up with its origin at the radar's height (ankles at about -0.86 m). These are TI's axes.
- Doppler: m/s, quantised in steps of 0.356 m/s (at most 2.14 m/s). Positive means moving away:
  it correlates positively with the range rate of the nearest skeleton joint.
- Intensity: integers from 2 to about 1200, the linear CFAR peak value of the xWR14xx demo (not
  an SNR). Here it becomes ``10 log10(1 + peak)`` dB, the conversion ti_mmwave_rospkg applies to
  this radar generation. Compare the shape of its distribution with simulated SNRs, not its
  offset.
- Abs Time: a single value per file (1.6171e+09 for subject 1, 1.6173e+09 for subject 3), printed
  with five significant digits, so its resolution is 1e5 s and it cannot stamp frames. Stamps
  are therefore ``Frame # x frame_period`` (the radar runs at 10 Hz). A file whose Abs Time
  rises from frame to frame would be stamped by it instead (``MarsRecording.stamp_source``).
- kinect csv: one row per radar frame. Its header names 75 columns: the X of the 25 Kinect joints
  in Kinect's order (``KINECT_25``), then their Y, then their Z, in the radar's axes and metres.
  The n-th distinct radar frame matches the n-th Kinect row: matched this way, the two variants
  give identical skeletons for every frame number they share.
- The splits are time splits of every movement, made after outlier removal, so a frame near a
  split boundary can sit in ``validate`` in one variant and in ``test`` in the other.

Output axes are REP-103 (x forward = MARS Y, y left = -MARS X, z up = MARS Z), through
``ti_to_ros_axes``.
"""
from __future__ import annotations

import gzip
import os
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from ros2_radar_pose.body.joint_sets import KINECT_25, JointSet
from ros2_radar_pose.radar.points import FIELDS, INTENSITY, VELOCITY
from ros2_radar_pose.radar.ti_uart import ti_to_ros_axes

ROOT_ENV = "RADAR_POSE_MARS"
VARIANTS = ("woutlier", "wooutlier")
SPLITS = ("train", "validate", "test")
FRAME_PERIOD = 0.1  # s: MARS records the radar at 10 Hz

RADAR_COLUMNS = ("Frame #", "# Obj", "X", "Y", "Z", "Doppler", "Intensity", "Abs Time")
KINECT_COLUMNS = tuple(f"{joint}_{axis}" for axis in "XYZ" for joint in KINECT_25.names)
_FRAME, _COUNT, _X, _Y, _Z, _DOPPLER, _INTENSITY, _ABS_TIME = range(len(RADAR_COLUMNS))
_DATA_FROM_LINE = 2  # line 1 of every file is the header

_WHERE_FROM = (
    "MARS is public (github.com/SizheAn/MARS, MIT licence). Lay it out as "
    "<root>/{woutlier,wooutlier}/subject<k>/{radar,kinect}_data_{validate,test}.csv.gz and point "
    f"at <root> with the environment variable {ROOT_ENV} or the root argument (default: a "
    "shared/data/mars folder beside or above this repository)."
)


class MarsFormatError(ValueError):
    """A MARS file is unreadable, truncated, has other columns, or disagrees with its partner."""


@dataclass(eq=False)
class MarsRecording:
    """One (subject, split, variant) of MARS, frame-aligned.

    ``clouds``: T clouds, each (N_t, 5) float32 x, y, z, velocity, intensity (radar/points.py
    layout; ROS axes in metres, m/s positive away from the radar, intensity in dB).
    ``skeletons``: (T, 25, 3) float32 KINECT_25 joints in the same axes.
    ``stamps``: (T,) float64 seconds, from ``stamp_source`` ("frame_number": Frame # x frame
    period, seconds since the radar's frame counter started; "abs_time": the file's Abs Time).
    ``frame_numbers``: (T,) int64, the radar's Frame #.
    """

    joint_set: ClassVar[JointSet] = KINECT_25

    subject: str
    split: str
    variant: str
    clouds: list[np.ndarray]
    skeletons: np.ndarray
    stamps: np.ndarray
    frame_numbers: np.ndarray
    stamp_source: str
    radar_path: Path
    kinect_path: Path
    points_per_frame: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.points_per_frame = np.array([len(cloud) for cloud in self.clouds], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.clouds)

    def frames(self, start: int, stop: int) -> MarsRecording:
        """Frames ``start`` to ``stop`` (exclusive) as a recording of their own."""
        return replace(self, clouds=self.clouds[start:stop], skeletons=self.skeletons[start:stop],
                       stamps=self.stamps[start:stop], frame_numbers=self.frame_numbers[start:stop])


def default_root() -> Path:
    """``$RADAR_POSE_MARS``, else the first ``shared/data/mars`` folder beside or above this package."""
    configured = os.environ.get(ROOT_ENV)
    if configured:
        return Path(configured).expanduser()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "mars"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no MARS data folder: {ROOT_ENV} is not set and no shared/data/mars "
                            f"folder is beside or above {Path(__file__).resolve().parent}. {_WHERE_FROM}")


def _resolve_root(root: str | Path | None) -> Path:
    path = default_root() if root is None else Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"MARS data folder {path} does not exist. {_WHERE_FROM}")
    return path


def subject_name(subject: int | str) -> str:
    """``1``, ``"1"`` or ``"subject1"`` -> ``"subject1"``."""
    if isinstance(subject, (int, np.integer)) and not isinstance(subject, bool):
        return f"subject{int(subject)}"
    if isinstance(subject, str) and subject.isdigit():
        return f"subject{int(subject)}"
    if isinstance(subject, str) and subject.startswith("subject") and subject[7:].isdigit():
        return subject
    raise ValueError(f"a MARS subject is a number or 'subject<k>', got {subject!r}")


def file_paths(subject: int | str, split: str = "test", variant: str = "woutlier",
               root: str | Path | None = None) -> tuple[Path, Path]:
    """The (radar, kinect) csv.gz paths of one recording; they need not exist."""
    if variant not in VARIANTS:
        raise ValueError(f"MARS variant must be one of {VARIANTS}, got {variant!r}")
    if split not in SPLITS:
        raise ValueError(f"MARS split must be one of {SPLITS}, got {split!r}")
    folder = _resolve_root(root) / variant / subject_name(subject)
    return folder / f"radar_data_{split}.csv.gz", folder / f"kinect_data_{split}.csv.gz"


def available(root: str | Path | None = None) -> list[tuple[str, str, str]]:
    """Every (subject, split, variant) under ``root`` with both its radar and Kinect file, sorted."""
    base = _resolve_root(root)
    found = []
    for variant in VARIANTS:
        for folder in sorted((base / variant).glob("subject*")):
            for split in SPLITS:
                radar, kinect = (folder / f"{kind}_data_{split}.csv.gz" for kind in ("radar", "kinect"))
                if radar.is_file() and kinect.is_file():
                    found.append((folder.name, split, variant))
    return sorted(found, key=lambda key: (int(key[0][7:]) if key[0][7:].isdigit() else -1, *key))


def load_mars(subject: int | str, split: str = "test", variant: str = "woutlier",
              root: str | Path | None = None, frame_period: float = FRAME_PERIOD) -> MarsRecording:
    """Read one MARS recording: clouds and skeletons frame-aligned, in ROS axes (module docstring).

    Raises FileNotFoundError (saying where MARS comes from) when a file is missing and
    MarsFormatError (naming the file and line) when one is corrupt, truncated, has other
    columns, or when the radar file's frames and the Kinect file's rows do not pair up.
    """
    radar_path, kinect_path = file_paths(subject, split, variant, root)
    for path in (radar_path, kinect_path):
        if not path.is_file():
            raise FileNotFoundError(f"MARS file {path} does not exist. {_WHERE_FROM}")
    radar = _read_table(radar_path, RADAR_COLUMNS)
    kinect = _read_table(kinect_path, KINECT_COLUMNS)
    if not len(radar) and not len(kinect):
        raise MarsFormatError(f"{radar_path} and {kinect_path} hold no frames")

    starts = _frame_starts(radar_path, radar)
    if len(starts) != len(kinect):
        last = (f"the last, frame {int(radar[starts[-1], _FRAME])}, starts at line "
                f"{starts[-1] + _DATA_FROM_LINE}" if len(starts) else "no rows")
        raise MarsFormatError(
            f"{radar_path} has {len(starts)} frames ({last}) but {kinect_path} has {len(kinect)} "
            f"skeleton rows (lines {_DATA_FROM_LINE}..{len(kinect) + _DATA_FROM_LINE - 1}); the n-th "
            "radar frame pairs with the n-th Kinect row, so the counts must agree")

    points = np.empty((len(radar), len(FIELDS)), dtype=np.float32)
    points[:, :VELOCITY + 1] = radar[:, _X:_DOPPLER + 1]
    points[:, INTENSITY] = 10.0 * np.log10(1.0 + radar[:, _INTENSITY])
    clouds = np.split(ti_to_ros_axes(points), starts[1:])

    joints = kinect.reshape(len(kinect), 3, len(KINECT_25)).transpose(0, 2, 1).reshape(-1, 3)
    skeletons = ti_to_ros_axes(joints).reshape(len(kinect), len(KINECT_25), 3)

    frame_numbers = radar[starts, _FRAME].astype(np.int64)
    abs_time = radar[starts, _ABS_TIME]
    if len(abs_time) > 1 and np.all(np.diff(abs_time) > 0):
        stamps, stamp_source = abs_time.copy(), "abs_time"
    else:
        stamps, stamp_source = frame_numbers * float(frame_period), "frame_number"
    return MarsRecording(subject=subject_name(subject), split=split, variant=variant, clouds=clouds,
                         skeletons=skeletons, stamps=stamps, frame_numbers=frame_numbers,
                         stamp_source=stamp_source, radar_path=radar_path, kinect_path=kinect_path)


def _frame_starts(path: Path, radar: np.ndarray) -> np.ndarray:
    """Row index of each frame's first row; checks the rows of a frame hang together."""
    frame = radar[:, _FRAME]
    bad = np.flatnonzero((frame < 0) | (frame != np.round(frame)))
    if len(bad):
        raise MarsFormatError(f"{path}, line {bad[0] + _DATA_FROM_LINE}: Frame # must be a whole "
                              f"number >= 0, got {frame[bad[0]]}")
    starts = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]]) if len(frame) else np.zeros(0, np.int64)
    back = np.flatnonzero(np.diff(frame[starts]) < 0)
    if len(back):
        row = starts[back[0] + 1]
        raise MarsFormatError(
            f"{path}, line {row + _DATA_FROM_LINE}: frame {int(frame[row])} comes after frame "
            f"{int(frame[row - 1])}, or a frame's rows are split; Frame # must rise from frame to frame")
    counts = np.diff(np.r_[starts, len(frame)])
    reported = np.repeat(radar[starts, _COUNT], counts)
    bad = np.flatnonzero(radar[:, _COUNT] != reported)
    if len(bad):
        raise MarsFormatError(f"{path}, line {bad[0] + _DATA_FROM_LINE}: # Obj changes within frame "
                              f"{int(frame[bad[0]])}")
    bad = np.flatnonzero(radar[starts, _COUNT] < counts)
    if len(bad):
        row = starts[bad[0]]
        raise MarsFormatError(f"{path}, line {row + _DATA_FROM_LINE}: frame {int(frame[row])} has "
                              f"{counts[bad[0]]} rows but # Obj says {int(radar[row, _COUNT])} points")
    bad = np.flatnonzero(radar[:, _INTENSITY] < 0)
    if len(bad):
        raise MarsFormatError(f"{path}, line {bad[0] + _DATA_FROM_LINE}: negative Intensity "
                              f"{radar[bad[0], _INTENSITY]}")
    return starts


def _read_table(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    """The (rows, len(columns)) float64 body of a csv.gz whose header is ``columns``."""
    try:
        with gzip.open(path, "rt", encoding="ascii", newline="") as stream:
            _check_header(path, stream.readline(), columns)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                table = np.loadtxt(stream, delimiter=",", comments=None, dtype=np.float64, ndmin=2)
    except MarsFormatError:
        raise
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise _diagnose(path, len(columns), exc) from None
    if not table.size:
        return np.zeros((0, len(columns)))
    bad = np.flatnonzero(~np.isfinite(table).all(axis=1))
    if len(bad):
        raise MarsFormatError(f"{path}, line {bad[0] + _DATA_FROM_LINE}: a value is not a finite number")
    return table


def _check_header(path: Path, line: str, columns: tuple[str, ...]) -> None:
    found = tuple(name.strip() for name in line.rstrip("\r\n").split(","))
    if found == columns:
        return
    if len(found) != len(columns):
        raise MarsFormatError(f"{path}: the header has {len(found)} columns, expected {len(columns)}: "
                              f"{','.join(columns[:8])}{',...' if len(columns) > 8 else ''}")
    at = next(i for i, (a, b) in enumerate(zip(found, columns)) if a != b)
    raise MarsFormatError(f"{path}: header column {at + 1} is {found[at]!r}, expected {columns[at]!r}")


def _diagnose(path: Path, n_columns: int, exc: BaseException) -> MarsFormatError:
    """Re-read the file line by line to say where the fast parser gave up, and why."""
    line_number = 0
    try:
        with gzip.open(path, "rb") as stream:
            for line_number, raw in enumerate(stream, start=1):
                if line_number == 1 or not raw.strip():
                    continue
                cells = raw.decode("ascii", "replace").rstrip("\r\n").split(",")
                if len(cells) != n_columns:
                    return MarsFormatError(f"{path}, line {line_number}: {len(cells)} values, "
                                           f"expected {n_columns}")
                for column, cell in enumerate(cells, start=1):
                    try:
                        float(cell)
                    except ValueError:
                        return MarsFormatError(f"{path}, line {line_number}, column {column}: "
                                               f"{cell[:40]!r} is not a number")
    except (OSError, EOFError, zlib.error) as broken:
        where = f"after line {line_number}" if line_number else "at its start"
        return MarsFormatError(f"{path}: the gzip stream breaks off {where} ({broken}); the file "
                               "is truncated or corrupt")
    return MarsFormatError(f"{path}: cannot be read ({exc})")
