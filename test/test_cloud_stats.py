"""Cloud statistics and their comparison: known answers, invariants, empty clouds, real MARS data."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from ros2_radar_pose.radar.cloud_stats import (
    STATISTICS,
    CloudStatistics,
    cloud_statistics,
    compare,
    distance_to_bones,
    format_side_by_side,
    ks_statistic,
    overall_score,
    to_json_dict,
)

# root at the origin, a bone along +x, then one along +y
CHAIN = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
CHAIN_PARENTS = (-1, 0, 1)


def bone_distance_reference(point: np.ndarray, joints: np.ndarray, parents) -> float:
    """One point, one skeleton, one bone at a time: the textbook point-to-segment distance."""
    best = math.inf
    for child, parent in enumerate(parents):
        if parent < 0:
            continue
        a, b = joints[child], joints[parent]
        ab = b - a
        t = 0.0 if not ab.any() else min(1.0, max(0.0, float(np.dot(point - a, ab) / np.dot(ab, ab))))
        best = min(best, float(np.linalg.norm(point - (a + t * ab))))
    return best


def random_recording(seed: int, frames: int = 40, joints: int = 6, empty_every: int = 0):
    """Clouds of 0..20 points around a random chain skeleton that walks along x."""
    rng = np.random.default_rng(seed)
    parents = (-1, *(rng.integers(0, j) for j in range(1, joints)))
    skeletons = rng.normal(0, 0.4, (frames, joints, 3)) + np.array([2.0, 0.0, 0.0])
    clouds = []
    for t in range(frames):
        n = 0 if empty_every and t % empty_every == 0 else int(rng.integers(1, 21))
        xyz = skeletons[t, rng.integers(0, joints, n)] + rng.normal(0, 0.1, (n, 3))
        clouds.append(np.column_stack([xyz, rng.normal(0, 0.5, n), rng.uniform(5, 25, n)]).astype(np.float32))
    return clouds, skeletons.astype(np.float32), parents


# ---------------------------------------------------------------------------- bone distances

@pytest.mark.parametrize("point, expected", [
    ([0.5, 0.0, 0.0], 0.0),            # on the first bone
    ([1.0, 0.25, 0.0], 0.0),           # on the second bone
    ([0.0, 0.0, 0.0], 0.0),            # on a joint
    ([0.5, 0.0, 0.3], 0.3),            # above the first bone's middle
    ([0.5, -0.4, 0.0], 0.4),           # beside it
    ([-0.3, 0.4, 0.0], 0.5),           # beyond the root end: distance to the root joint
    ([1.0, 1.6, 0.8], 1.0),            # beyond the last joint: (0.6, 0.8) from it
    ([2.0, 0.5, 0.0], 1.0),            # beside the second bone
    ([0.7, 0.6, 0.0], 0.3),            # inside the corner: nearer the second bone than the first
])
def test_distance_to_bones_known_answers(point, expected):
    got = distance_to_bones(np.array([point]), CHAIN[None], CHAIN_PARENTS, np.array([0]))
    assert got == pytest.approx([expected], abs=1e-12)


def test_each_point_uses_its_own_frame():
    skeletons = np.stack([CHAIN, CHAIN + [0.0, 0.0, 2.0]])
    points = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    got = distance_to_bones(points, skeletons, CHAIN_PARENTS, np.array([0, 1]))
    np.testing.assert_allclose(got, [0.0, 2.0])


def test_single_joint_skeleton_measures_to_the_joint():
    got = distance_to_bones(np.array([[3.0, 4.0, 0.0]]), np.zeros((1, 1, 3)), (-1,), np.array([0]))
    np.testing.assert_allclose(got, [5.0])


def test_zero_length_bone_is_a_point():
    skeleton = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    got = distance_to_bones(np.array([[0.0, 3.0, 4.0]]), skeleton, (-1, 0), np.array([0]))
    np.testing.assert_allclose(got, [5.0])


coordinates = st.floats(-3, 3, allow_nan=False, width=32)


@given(points=arrays(np.float64, (5, 3), elements=coordinates),
       joints=arrays(np.float64, (4, 3), elements=coordinates),
       parents=st.tuples(st.just(-1), st.integers(0, 0), st.integers(0, 1), st.integers(0, 2)),
       shift=arrays(np.float64, 3, elements=coordinates))
def test_distance_to_bones_matches_the_reference_and_ignores_translation(points, joints, parents, shift):
    got = distance_to_bones(points, joints[None], parents, np.zeros(5, int))
    expected = [bone_distance_reference(p, joints, parents) for p in points]
    np.testing.assert_allclose(got, expected, atol=1e-9)
    moved = distance_to_bones(points + shift, (joints + shift)[None], parents, np.zeros(5, int))
    np.testing.assert_allclose(moved, got, atol=1e-9)


def test_distance_to_bones_over_many_chunks():
    clouds, skeletons, parents = random_recording(3, frames=1800)
    points = np.concatenate(clouds)[:, :3].astype(np.float64)
    frame = np.repeat(np.arange(len(clouds)), [len(c) for c in clouds])
    assert len(points) > 2 * 8192
    got = distance_to_bones(points, skeletons, parents, frame)
    pick = np.random.default_rng(0).choice(len(points), 200, replace=False)
    expected = [bone_distance_reference(points[i], skeletons[frame[i]].astype(np.float64), parents) for i in pick]
    np.testing.assert_allclose(got[pick], expected, atol=1e-6)


# ---------------------------------------------------------------------------- cloud statistics

def test_known_samples():
    skeletons = np.stack([CHAIN, CHAIN, CHAIN, CHAIN]) + [2.0, 0.5, 0.0]   # root at (2, 0.5, 0)
    clouds = [
        np.array([[2.1, 0.3, 0.8, 0.0, 10.0], [1.0, 1.0, 0.0, 0.05, 20.0]], np.float32),
        np.zeros((0, 5), np.float32),
        np.array([[1.0, 0.0, 1.0, -0.2, 5.0], [2.5, 0.5, 0.0, 0.5, 7.0], [3.0, 0.0, 0.0, 0.1, 8.0]], np.float32),
        np.zeros((0, 5), np.float32),
    ]
    s = cloud_statistics(clouds, skeletons, CHAIN_PARENTS, static_speed=0.1)
    assert (s.n_frames, s.n_points) == (4, 5)
    assert set(s.samples) == {name for name, _, _ in STATISTICS}
    np.testing.assert_array_equal(s.samples["points_per_frame"], [2, 0, 3, 0])
    np.testing.assert_array_equal(s.samples["empty_frame"], [0, 1, 0, 1])
    np.testing.assert_allclose(s.samples["offset_depth"][0], 0.1, atol=1e-6)
    np.testing.assert_allclose(s.samples["offset_lateral"][0], -0.2, atol=1e-6)
    np.testing.assert_allclose(s.samples["offset_height"][0], 0.8, atol=1e-6)
    np.testing.assert_allclose(s.samples["bone_distance"][3], 0.0, atol=1e-6)    # (2.5, 0.5, 0) on bone 1
    np.testing.assert_allclose(s.samples["bone_distance"][4], 0.5, atol=1e-6)    # (3, 0, 0): 0.5 from joint 1
    np.testing.assert_allclose(s.samples["range"][1], math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(s.samples["azimuth"][1], math.pi / 4, rtol=1e-6)  # (1, 1, 0): left of ahead
    np.testing.assert_allclose(s.samples["elevation"][[1, 2]], [0.0, math.pi / 4], atol=1e-6)
    np.testing.assert_allclose(s.samples["velocity"], [0.0, 0.05, -0.2, 0.5, 0.1], atol=1e-6)
    np.testing.assert_array_equal(s.samples["static_point"], [1, 1, 0, 0, 0])  # 0.1 is not below 0.1
    np.testing.assert_array_equal(s.samples["intensity"], [10, 20, 5, 7, 8])


def test_all_empty_clouds_give_defined_values_and_no_nan():
    skeletons = np.repeat(CHAIN[None], 3, axis=0)
    empty = cloud_statistics([np.zeros((0, 5), np.float32)] * 3, skeletons, CHAIN_PARENTS)
    assert (empty.n_frames, empty.n_points) == (3, 0)
    np.testing.assert_array_equal(empty.samples["points_per_frame"], [0, 0, 0])
    np.testing.assert_array_equal(empty.samples["empty_frame"], [1, 1, 1])
    assert all(len(empty.samples[name]) == 0 for name in ("bone_distance", "velocity", "range"))

    clouds, skeletons, parents = random_recording(1, joints=3)
    full = cloud_statistics(clouds, skeletons, (-1, 0, 1))
    for other in (empty, full):
        comparisons = compare(empty, other)
        assert comparisons["velocity"].w1 is None and comparisons["velocity"].reference.mean is None
        assert overall_score(comparisons) is None
        text = format_side_by_side("none", empty, "other", other)
        assert "nan" not in text.lower() and "score" in text
        json.dumps(to_json_dict("none", empty, "other", other), allow_nan=False)
    assert compare(empty, full)["empty_frame"].w1 == pytest.approx(1.0)   # every frame vs none


def test_no_frames_at_all():
    s = cloud_statistics([], np.zeros((0, 3, 3)), CHAIN_PARENTS)
    assert (s.n_frames, s.n_points) == (0, 0)
    assert overall_score(compare(s, s)) is None


@pytest.mark.parametrize("clouds, skeletons, parents, message", [
    ([np.zeros((1, 5))] * 2, np.zeros((3, 3, 3)), CHAIN_PARENTS, "2 clouds for 3 skeletons"),
    ([np.zeros((1, 5))], np.zeros((1, 3, 2)), CHAIN_PARENTS, r"shape \(T, J, 3\)"),
    ([np.zeros((1, 5))], np.zeros((1, 3, 3)), (-1, 0), "one parent index per joint"),
    ([np.zeros((1, 5))], np.zeros((1, 3, 3)), (-1, -1, 0), "one root"),
    ([np.zeros((1, 5))], np.zeros((1, 3, 3)), (-1, 0, 7), "parent index"),
    ([np.zeros((1, 4))], np.zeros((1, 3, 3)), CHAIN_PARENTS, r"shape \(N, 5\)"),
    ([np.zeros((1, 5)), np.full((1, 5), np.nan)], np.zeros((2, 3, 3)), CHAIN_PARENTS, "cloud 1 has a non-finite"),
    ([np.zeros((1, 5))], np.full((1, 3, 3), np.inf), CHAIN_PARENTS, "skeleton 0 has a non-finite"),
])
def test_bad_input_is_named(clouds, skeletons, parents, message):
    with pytest.raises(ValueError, match=message):
        cloud_statistics(clouds, skeletons, parents)


def test_concatenate_pools_recordings():
    clouds, skeletons, parents = random_recording(2, empty_every=5)
    whole = cloud_statistics(clouds, skeletons, parents)
    halves = [cloud_statistics(clouds[s], skeletons[s], parents) for s in (slice(0, 17), slice(17, None))]
    pooled = CloudStatistics.concatenate(halves)
    assert (pooled.n_frames, pooled.n_points) == (whole.n_frames, whole.n_points)
    for name, sample in whole.samples.items():
        np.testing.assert_array_equal(pooled.samples[name], sample, err_msg=name)


# ---------------------------------------------------------------------------- comparison

def test_identical_inputs_are_at_distance_zero():
    clouds, skeletons, parents = random_recording(4, empty_every=7)
    a = cloud_statistics(clouds, skeletons, parents)
    b = cloud_statistics([c.copy() for c in clouds], skeletons.copy(), parents)
    comparisons = compare(a, b)
    assert set(comparisons) == {name for name, _, _ in STATISTICS}
    for c in comparisons.values():
        assert c.w1 == 0 and c.w1_scaled == 0 and c.ks == 0, c.name
        assert c.reference == c.other
    assert overall_score(comparisons) == 0


@pytest.mark.parametrize("column, name, shift", [(3, "velocity", 0.3), (4, "intensity", -2.5)])
def test_a_shift_gives_w1_equal_to_the_shift(column, name, shift):
    clouds, skeletons, parents = random_recording(5)
    shifted = [c.copy() for c in clouds]
    for c in shifted:
        c[:, column] += np.float32(shift)
    reference = cloud_statistics(clouds, skeletons, parents)
    comparisons = compare(reference, cloud_statistics(shifted, skeletons, parents))
    assert comparisons[name].w1 == pytest.approx(abs(shift), abs=1e-5)
    q25, q75 = np.percentile(reference.samples[name], [25, 75])
    assert comparisons[name].scale == pytest.approx(q75 - q25)
    assert comparisons[name].w1_scaled == pytest.approx(abs(shift) / (q75 - q25), rel=1e-4)
    assert comparisons[name].other.mean == pytest.approx(comparisons[name].reference.mean + shift, abs=1e-5)
    assert comparisons["bone_distance"].w1 == 0 and comparisons["range"].w1 == 0
    score = overall_score(comparisons)
    assert score == pytest.approx(np.mean([c.w1_scaled for c in comparisons.values()]))
    assert score > 0


def test_shares_scales_and_ks():
    skeletons = np.repeat(CHAIN[None], 4, axis=0)
    point = np.array([[1.0, 0.0, 0.0, 0.0, 10.0]], np.float32)
    one_empty = cloud_statistics([point, point, point, point[:0]], skeletons, CHAIN_PARENTS)
    two_empty = cloud_statistics([point, point[:0], point, point[:0]], skeletons, CHAIN_PARENTS)
    c = compare(one_empty, two_empty)
    assert c["empty_frame"].w1 == pytest.approx(0.25) and c["empty_frame"].w1_scaled == pytest.approx(0.25)
    # constant reference intensity (IQR 0, std 0): the scale is 1 dB
    moved = cloud_statistics([point + [0, 0, 0, 0, 3]] * 4, skeletons, CHAIN_PARENTS)
    c = compare(one_empty, moved)
    assert (c["intensity"].w1, c["intensity"].scale, c["intensity"].w1_scaled) == pytest.approx((3, 1, 3))
    assert c["intensity"].ks == 1.0                  # disjoint samples
    # mostly static reference velocities: IQR 0, so the standard deviation scales
    velocities = np.r_[np.zeros(90), np.ones(10)].astype(np.float32)
    cloud = np.column_stack([np.ones(100), np.zeros(100), np.zeros(100), velocities, np.ones(100)])
    sparse = cloud_statistics([cloud], CHAIN[None], CHAIN_PARENTS)
    c = compare(sparse, cloud_statistics([cloud + [0, 0, 0, 1, 0]], CHAIN[None], CHAIN_PARENTS))
    assert c["velocity"].scale == pytest.approx(0.3) and c["velocity"].w1_scaled == pytest.approx(1 / 0.3)


@given(a=arrays(np.float64, st.integers(1, 30), elements=st.integers(-5, 5).map(float)),
       b=arrays(np.float64, st.integers(1, 30), elements=st.floats(-5, 5, allow_nan=False)))
def test_ks_statistic_agrees_with_scipy(a, b):
    with np.errstate(all="ignore"):  # scipy's p-value of tiny samples divides by zero; the statistic is fine
        expected = stats.ks_2samp(a, b, method="asymp").statistic
    assert ks_statistic(a, b) == pytest.approx(expected, abs=1e-12)


def test_side_by_side_table_and_json():
    clouds, skeletons, parents = random_recording(6)
    a = cloud_statistics(clouds, skeletons, parents)
    b = cloud_statistics([c * [1, 1, 1, 2, 1] for c in clouds], skeletons, parents)
    text = format_side_by_side("real", a, "sim", b)
    lines = text.splitlines()
    assert "real: mean ± std" in lines[0] and "sim: mean ± std" in lines[0] and "W1" in lines[0]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert set(rows) == {name for name, _, _ in STATISTICS}
    velocity = compare(a, b)["velocity"]
    assert f"{velocity.w1:.3f}" in rows["velocity"] and rows["velocity"].split()[1] == "m/s"
    assert f"{overall_score(compare(a, b)):.3f}" in lines[-1]
    record = json.loads(json.dumps(to_json_dict("real", a, "sim", b), allow_nan=False))
    assert record["reference"] == {"name": "real", "frames": a.n_frames, "points": a.n_points}
    assert record["statistics"]["velocity"]["w1"] == pytest.approx(velocity.w1)
    assert record["score"] == pytest.approx(overall_score(compare(a, b)))


# ---------------------------------------------------------------------------- real MARS data

def mars_or_skip():
    from ros2_radar_pose.data import mars
    try:
        mars.file_paths(1)
        return mars.load_mars(1, "test"), mars.load_mars(1, "test", "wooutlier")
    except FileNotFoundError as exc:
        pytest.skip(f"no MARS data ({exc})")


def test_real_mars_numbers_are_sensible():
    raw, clean = mars_or_skip()
    parents = raw.joint_set.parents
    stats_raw = cloud_statistics(raw.clouds, raw.skeletons, parents)
    stats_clean = cloud_statistics(clean.clouds, clean.skeletons, parents)
    print()
    print(format_side_by_side("MARS s1 test raw", stats_raw, "outliers removed", stats_clean))
    c = compare(stats_raw, stats_clean)
    for s in (c["bone_distance"].reference, c["bone_distance"].other):
        assert 0.05 < s.median < 0.3          # points hug the body within a few decimetres
    assert c["bone_distance"].other.p95 < 0.5 < c["bone_distance"].reference.p95   # outliers are far
    assert c["empty_frame"].reference.mean == 0                                     # MARS has no empty frame
    assert 20 < c["points_per_frame"].reference.mean < 50 and c["points_per_frame"].reference.p95 <= 64
    assert 0.1 < c["static_point"].reference.mean < 0.3
    assert 1.6 < c["range"].reference.median < 2.3                                 # subjects stand ~2 m away
    assert 0.2 < c["offset_height"].reference.median < 0.7                        # the upper body reflects most
    assert c["offset_depth"].other.median < 0                                      # the front surface faces the radar
    assert 5 < c["intensity"].reference.median < 25
    assert 0 < overall_score(c) < 1
