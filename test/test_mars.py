"""MARS importer: the real files (when present) and small synthetic csv.gz files for every error."""
import functools
import gzip
import time
from pathlib import Path

import numpy as np
import pytest

from ros2_radar_pose.body.joint_sets import KINECT_25
from ros2_radar_pose.data.mars import (
    FRAME_PERIOD,
    KINECT_COLUMNS,
    RADAR_COLUMNS,
    ROOT_ENV,
    MarsFormatError,
    available,
    default_root,
    load_mars,
)


def real_root() -> Path | None:
    try:
        root = default_root()
    except FileNotFoundError:
        return None
    return root if (root / "woutlier").is_dir() else None


REAL_ROOT = real_root()
needs_mars = pytest.mark.skipif(REAL_ROOT is None, reason=f"no MARS data: set {ROOT_ENV} or put it in "
                                "../shared/data/mars (github.com/SizheAn/MARS)")

# From the dataset's README (frames) and a count of the files' data lines (points).
FRAMES = {("subject1", "validate"): 2374, ("subject1", "test"): 2362,
          ("subject3", "validate"): 1783, ("subject3", "test"): 1769}
POINTS = {("subject1", "validate", "woutlier"): 78914, ("subject1", "test", "woutlier"): 79274,
          ("subject3", "validate", "woutlier"): 75191, ("subject3", "test", "woutlier"): 74668,
          ("subject1", "validate", "wooutlier"): 67635, ("subject1", "test", "wooutlier"): 67824,
          ("subject3", "validate", "wooutlier"): 64085, ("subject3", "test", "wooutlier"): 63997}
J = {name: KINECT_25.index(name) for name in KINECT_25.names}


@functools.cache
def real(subject: str, split: str, variant: str = "woutlier"):
    return load_mars(subject, split, variant)


def db(peak: float) -> float:
    return 10 * np.log10(1 + peak)


# ---------------------------------------------------------------------------- the real files

@needs_mars
def test_all_recordings_load_quickly_with_the_documented_counts():
    assert set(available()) == set(POINTS)
    start = time.perf_counter()
    recordings = {key: real(*key) for key in POINTS}
    elapsed = time.perf_counter() - start
    print(f"loaded all {len(recordings)} MARS recordings in {elapsed:.2f} s")
    assert elapsed < 20
    for (subject, split, variant), rec in recordings.items():
        if variant == "woutlier":
            assert len(rec) == FRAMES[subject, split]
        assert len(rec) == len(rec.skeletons) == len(rec.stamps) == len(rec.frame_numbers)
        assert rec.points_per_frame.sum() == POINTS[subject, split, variant]
        assert rec.skeletons.shape == (len(rec), 25, 3) and rec.skeletons.dtype == np.float32
        assert 1 <= rec.points_per_frame.min() and rec.points_per_frame.max() <= 64
        assert all(c.dtype == np.float32 and c.shape[1] == 5 and c.flags.c_contiguous for c in rec.clouds)
        assert rec.stamp_source == "frame_number"
        np.testing.assert_allclose(rec.stamps, rec.frame_numbers * FRAME_PERIOD)
        assert np.all(np.diff(rec.stamps) > 0)


@needs_mars
def test_known_rows_arrive_in_ros_axes():
    rec = real("subject1", "test")
    assert rec.frame_numbers[0] == 925 and rec.frame_numbers[-1] == 21353
    # "925,30,0.35742,1.8652,0.12695,0,6,..." and the file's last row
    np.testing.assert_allclose(rec.clouds[0][0], [1.8652, -0.35742, 0.12695, 0.0, db(6)], rtol=1e-6)
    np.testing.assert_allclose(rec.clouds[-1][-1], [0.65723, 0.31543, -1.8848, -0.356, db(15)], rtol=1e-6)
    assert len(rec.clouds[0]) == 30 and len(rec.clouds[-1]) == 29
    np.testing.assert_allclose(rec.skeletons[0, J["SpineBase"]], [1.954, -0.17122, -0.11295], rtol=1e-6)
    np.testing.assert_allclose(rec.skeletons[0, J["Head"]], [1.9944, -0.14384, 0.69424], rtol=1e-6)
    np.testing.assert_allclose(rec.skeletons[-1, J["AnkleLeft"]], [1.9821, -0.30494, -0.85469], rtol=1e-6)

    clean = real("subject3", "validate", "wooutlier")  # line 1000: 598,64,0.18359,1.9463,0.16699,-0.71201,16
    cloud = clean.clouds[int(np.flatnonzero(clean.frame_numbers == 598)[0])]
    assert np.any(np.all(np.isclose(cloud, [1.9463, -0.18359, 0.16699, -0.71201, db(16)], rtol=1e-6), axis=1))


@needs_mars
@pytest.mark.parametrize("subject", ["subject1", "subject3"])
def test_axes_head_up_subject_in_front_facing_the_radar(subject):
    rec = real(subject, "test")
    sk = rec.skeletons
    head_over_ankles = sk[:, J["Head"], 2] - np.maximum(sk[:, J["AnkleLeft"], 2], sk[:, J["AnkleRight"], 2])
    assert head_over_ankles.min() > 0.8 and np.median(head_over_ankles) > 1.3  # leg raises lift an ankle
    assert np.all(sk[:, J["SpineBase"], 0] > 1.0)
    # facing the radar, the subject's left is the radar's right: smaller y
    assert np.median(sk[:, J["ShoulderLeft"], 1] - sk[:, J["ShoulderRight"], 1]) < -0.25
    # the clouds sit on the person
    centres = np.array([np.median(c[:, :3], axis=0) for c in rec.clouds])
    assert np.median(np.linalg.norm(centres - sk[:, J["SpineMid"]], axis=1)) < 0.4


@needs_mars
def test_doppler_is_positive_away_from_the_radar():
    rec = real("subject3", "test")
    frames = rec.frame_numbers
    joint_range = np.linalg.norm(rec.skeletons, axis=2)  # (T, 25)
    rate = np.full(joint_range.shape, np.nan)
    steady = frames[2:] - frames[:-2] == 2
    rate[1:-1][steady] = (joint_range[2:] - joint_range[:-2])[steady] / (2 * FRAME_PERIOD)
    doppler, joint_rate = [], []
    for t, cloud in enumerate(rec.clouds):
        if np.isnan(rate[t, 0]):
            continue
        nearest = np.argmin(np.linalg.norm(cloud[:, None, :3] - rec.skeletons[t], axis=2), axis=1)
        doppler.append(cloud[:, 3])
        joint_rate.append(rate[t, nearest])
    doppler, joint_rate = np.concatenate(doppler), np.concatenate(joint_rate)
    moving = doppler != 0
    assert np.corrcoef(doppler[moving], joint_rate[moving])[0, 1] > 0.15


@needs_mars
@pytest.mark.parametrize("subject", ["subject1", "subject3"])
def test_outlier_free_clouds_are_subsets_with_the_same_skeletons(subject):
    raw = {}
    for split in ("validate", "test"):
        rec = real(subject, split)
        raw.update({f: (c, s) for f, c, s in zip(rec.frame_numbers, rec.clouds, rec.skeletons)})
    shared = 0
    for split in ("validate", "test"):
        rec = real(subject, split, "wooutlier")
        for frame, cloud, skeleton in zip(rec.frame_numbers, rec.clouds, rec.skeletons):
            if frame not in raw:
                continue
            shared += 1
            raw_cloud, raw_skeleton = raw[frame]
            np.testing.assert_array_equal(skeleton, raw_skeleton)
            assert len(cloud) <= len(raw_cloud)
            assert {r.tobytes() for r in cloud} <= {r.tobytes() for r in raw_cloud}, f"frame {frame}"
        assert shared
    assert shared >= 0.99 * sum(len(real(subject, s, "wooutlier")) for s in ("validate", "test"))


# ---------------------------------------------------------------------------- synthetic files

def kinect_row(t: int) -> list[float]:
    """75 values, X of every joint then Y then Z: joint j of frame t is (t + j/100, 2 + j/100, j/10)."""
    j = np.arange(25)
    return [*(t + j / 100), *(2 + j / 100), *(j / 10)]


POINT_ROWS = [  # Frame #, # Obj, X, Y, Z, Doppler, Intensity, Abs Time
    [10, 2, 0.5, 2.0, 0.25, 0.356, 9, 1.6e9],
    [10, 2, -0.5, 1.5, -0.75, -0.712, 99, 1.6e9],
    [11, 1, 0.125, 3.0, 1.0, 0.0, 0, 1.6e9],
    [13, 4, 1.0, 2.5, 0.0, 1.068, 999, 1.6e9],  # # Obj above the row count: outliers removed
]


RADAR_HEADER, KINECT_HEADER = ",".join(RADAR_COLUMNS), ",".join(KINECT_COLUMNS)


def write_gz(path: Path, header: str, rows, raw: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)
    path.write_bytes(raw if raw is not None else gzip.compress(text.encode()))
    return path


def write_mars(root: Path, radar_rows=POINT_ROWS, kinect_rows=None, subject="subject1", split="test",
               variant="woutlier", radar_header=RADAR_HEADER,
               kinect_header=KINECT_HEADER) -> tuple[Path, Path]:
    frames = len(dict.fromkeys(row[0] for row in radar_rows))
    kinect_rows = [kinect_row(t) for t in range(frames)] if kinect_rows is None else kinect_rows
    folder = root / variant / subject
    return (write_gz(folder / f"radar_data_{split}.csv.gz", radar_header, radar_rows),
            write_gz(folder / f"kinect_data_{split}.csv.gz", kinect_header, kinect_rows))


def test_synthetic_round_trip(tmp_path):
    radar_path, kinect_path = write_mars(tmp_path)
    rec = load_mars(1, "test", root=tmp_path)
    assert (rec.subject, rec.split, rec.variant) == ("subject1", "test", "woutlier")
    assert (rec.radar_path, rec.kinect_path) == (radar_path, kinect_path)
    assert rec.points_per_frame.tolist() == [2, 1, 1]
    np.testing.assert_allclose(rec.clouds[0], [[2.0, -0.5, 0.25, 0.356, db(9)],
                                               [1.5, 0.5, -0.75, -0.712, db(99)]], rtol=1e-6)
    np.testing.assert_allclose(rec.clouds[2], [[2.5, -1.0, 0.0, 1.068, db(999)]], rtol=1e-6)
    assert rec.clouds[1][0, 4] == 0.0  # a peak of 0 is 0 dB, not -inf
    j = np.arange(25)
    for t in range(3):
        np.testing.assert_allclose(rec.skeletons[t], np.stack([2 + j / 100, -(t + j / 100), j / 10], axis=1),
                                   rtol=1e-6)
    assert rec.frame_numbers.tolist() == [10, 11, 13]
    assert rec.stamp_source == "frame_number"
    np.testing.assert_allclose(rec.stamps, [1.0, 1.1, 1.3])
    assert available(tmp_path) == [("subject1", "test", "woutlier")]


def test_a_stretch_of_frames_is_a_recording_of_its_own(tmp_path):
    write_mars(tmp_path)
    rec = load_mars(1, "test", root=tmp_path)
    part = rec.frames(1, 3)
    assert len(part) == 2 and part.points_per_frame.tolist() == [1, 1]
    assert part.frame_numbers.tolist() == [11, 13] and part.stamps.tolist() == rec.stamps[1:].tolist()
    np.testing.assert_array_equal(part.skeletons, rec.skeletons[1:])
    assert part.clouds[1] is rec.clouds[2] and part.subject == rec.subject
    assert len(rec) == 3                                     # the recording itself is left as it was


def test_rising_abs_time_becomes_the_stamps(tmp_path):
    rows = [[*row[:7], 1000.0 + 0.1 * row[0]] for row in POINT_ROWS]
    write_mars(tmp_path, radar_rows=rows)
    rec = load_mars("subject1", root=tmp_path, frame_period=0.05)
    assert rec.stamp_source == "abs_time"
    np.testing.assert_allclose(rec.stamps, [1001.0, 1001.1, 1001.3])


def test_root_from_the_environment(tmp_path, monkeypatch):
    write_mars(tmp_path, split="validate", variant="wooutlier", subject="subject3")
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert default_root() == tmp_path
    assert available() == [("subject3", "validate", "wooutlier")]
    assert len(load_mars(3, "validate", "wooutlier")) == 3


def test_missing_data_says_where_it_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"(?s)does not exist.*SizheAn/MARS.*{ROOT_ENV}"):
        load_mars(1, root=tmp_path / "nowhere")
    write_mars(tmp_path)
    (tmp_path / "woutlier/subject1/radar_data_test.csv.gz").rename(
        tmp_path / "woutlier/subject1/radar_data_validate.csv.gz")
    with pytest.raises(FileNotFoundError, match=r"kinect_data_validate\.csv\.gz does not exist"):
        load_mars(1, "validate", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="subject2"):
        load_mars(2, root=tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"variant": "raw"}, "variant"), ({"split": "train2"}, "split"), ({"subject": "one"}, "subject"),
    ({"subject": True}, "subject"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    write_mars(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_mars(**{"subject": 1, "root": tmp_path, **kwargs})


def expect_format_error(root: Path, pattern: str):
    with pytest.raises(MarsFormatError, match=pattern):
        load_mars(1, root=root)


def test_truncated_gzip(tmp_path):
    rows = [[f, 1, 0.1, 2.0, 0.0, 0.0, 5, 1.6e9] for f in range(3000)]
    radar_path, _ = write_mars(tmp_path, radar_rows=rows)
    data = radar_path.read_bytes()
    radar_path.write_bytes(data[:len(data) // 2])
    expect_format_error(tmp_path, r"radar_data_test\.csv\.gz: the gzip stream breaks off after line \d+.*truncated")


def test_not_gzip(tmp_path):
    _, kinect_path = write_mars(tmp_path)
    kinect_path.write_bytes(b"SpineBase_X,...\n")
    expect_format_error(tmp_path, r"kinect_data_test\.csv\.gz: the gzip stream breaks off at its start")


def test_wrong_radar_column(tmp_path):
    write_mars(tmp_path, radar_header="Frame #,# Obj,X,Y,Z,Velocity,Intensity,Abs Time")
    expect_format_error(tmp_path, r"radar_data_test\.csv\.gz: header column 6 is 'Velocity', expected 'Doppler'")


def test_kinect_without_a_column(tmp_path):
    write_mars(tmp_path, kinect_header=",".join(KINECT_COLUMNS[:-1]))
    expect_format_error(tmp_path, r"kinect_data_test\.csv\.gz: the header has 74 columns, expected 75")


def test_kinect_without_header(tmp_path):
    write_mars(tmp_path, kinect_header=",".join(str(v) for v in kinect_row(9)))
    expect_format_error(tmp_path, r"header column 1 is '9\.0', expected 'SpineBase_X'")


@pytest.mark.parametrize("row, pattern", [
    ([11, 1, 0.1, 2.0, "abc", 0.0, 5, 1.6e9], r"line 4, column 5: 'abc' is not a number"),
    ([11, 1, 0.1, 2.0, 0.0, 0.0, 5], r"line 4: 7 values, expected 8"),
    ([11, 1, 0.1, 2.0, "nan", 0.0, 5, 1.6e9], r"line 4: a value is not a finite number"),
    ([11, 1, 0.1, 2.0, 0.0, 0.0, -5, 1.6e9], r"line 4: negative Intensity"),
    ([10.5, 1, 0.1, 2.0, 0.0, 0.0, 5, 1.6e9], r"line 4: Frame # must be a whole number"),
])
def test_bad_radar_row_is_named(tmp_path, row, pattern):
    write_mars(tmp_path, radar_rows=[*POINT_ROWS[:2], row, *POINT_ROWS[3:]])
    expect_format_error(tmp_path, r"radar_data_test\.csv\.gz, " + pattern)


def test_frames_must_rise(tmp_path):
    write_mars(tmp_path, radar_rows=[POINT_ROWS[0], POINT_ROWS[2], POINT_ROWS[1], POINT_ROWS[3]])
    expect_format_error(tmp_path, r"line 4: frame 10 comes after frame 11")


def test_object_count_below_row_count(tmp_path):
    write_mars(tmp_path, radar_rows=[[10, 1, *POINT_ROWS[0][2:]], [10, 1, *POINT_ROWS[1][2:]], *POINT_ROWS[2:]])
    expect_format_error(tmp_path, r"line 2: frame 10 has 2 rows but # Obj says 1 points")
    write_mars(tmp_path, radar_rows=[POINT_ROWS[0], [10, 3, *POINT_ROWS[1][2:]], *POINT_ROWS[2:]])
    expect_format_error(tmp_path, r"line 3: # Obj changes within frame 10")


@pytest.mark.parametrize("kinect_rows", [2, 4])
def test_frame_count_mismatch_names_both_files(tmp_path, kinect_rows):
    write_mars(tmp_path, kinect_rows=[kinect_row(t) for t in range(kinect_rows)])
    expect_format_error(tmp_path, rf"(?s)radar_data_test\.csv\.gz has 3 frames \(the last, frame 13, starts "
                                  rf"at line 5\) but .*kinect_data_test\.csv\.gz has {kinect_rows} skeleton rows")


def test_no_frames_at_all(tmp_path):
    write_mars(tmp_path, radar_rows=[], kinect_rows=[])
    expect_format_error(tmp_path, "hold no frames")


def test_available_on_an_empty_root(tmp_path):
    assert available(tmp_path) == []


def test_radar_without_rows_but_kinect_with_rows(tmp_path):
    write_mars(tmp_path, radar_rows=[], kinect_rows=[kinect_row(0)])
    expect_format_error(tmp_path, r"radar_data_test\.csv\.gz has 0 frames \(no rows\) but .* has 1 skeleton rows")


def test_corrupt_gzip_names_the_file(tmp_path):
    rows = [[f, 1, 0.1, 2.0, 0.0, 0.0, 5, 1.6e9] for f in range(3000)]
    radar_path, _ = write_mars(tmp_path, radar_rows=rows)
    data = bytearray(radar_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    radar_path.write_bytes(bytes(data))
    expect_format_error(tmp_path, r"radar_data_test\.csv\.gz")
