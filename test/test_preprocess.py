"""Radar cloud preprocessing: each stage's behaviour, and equality with a per-point oracle."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from bench.reference import ReferencePreprocessor
from ros2_radar_pose.radar.fields import FieldMappingError, resolve_fields, to_cloud
from ros2_radar_pose.radar.preprocess import (
    CloudPreprocessor,
    PreprocessConfig,
    RigidTransform,
    ground_clusters,
)


def blob(rng, centre, n, spread=0.15, speed=0.5):
    """A person-like column of n points around centre (x, y) with moving Doppler."""
    xyz = rng.normal([centre[0], centre[1], 0.0], [spread, spread, 0.5], (n, 3))
    return np.c_[xyz, rng.normal(0, speed, n), rng.uniform(5, 30, n)].astype(np.float32)


def wall(rng, x, n, spots=12):
    """Static points on a few fixed spots of a wall at distance x: what a radar sees of walls."""
    spot = rng.integers(0, spots, n)
    # Spots sit at voxel centres (0.2 m voxels) so their jitter stays in one voxel.
    xyz = np.c_[np.full(n, x), -2.3 + 0.4 * spot, 0.1 + 0.2 * (spot % 3)] + rng.normal(0, 0.01, (n, 3))
    return np.c_[xyz, np.zeros(n), np.full(n, 20.0)].astype(np.float32)


def test_region_of_interest_and_non_finite_points():
    cfg = PreprocessConfig(clutter_enabled=False, cluster_min_points=1, person_min_moving=1,
                           person_radius=20.0)
    cloud = np.array([[2, 0, 0, 1, 10],          # kept
                      [0.1, 0, 0, 0, 10],        # too near
                      [9, 0, 0, 0, 10],          # too far
                      [1, 3, 0, 1, 10],          # azimuth 71.6 deg < 75: kept
                      [1, 4, 0, 0, 10],          # azimuth 76 deg: out
                      [2, 0, 2.6, 0, 10],        # above z_max
                      [2, 0, 0, 0, -1],          # below min_intensity
                      [np.nan, 0, 0, 0, 10],
                      [2, 0, 0, np.inf, 10]], dtype=np.float32)
    result = CloudPreprocessor(cfg).process(cloud, 0.0)
    assert result.n_input == 9 and result.n_finite == 7 and result.n_roi == 2
    np.testing.assert_array_equal(result.cloud[:, 0], [2, 1])


def test_a_still_cluster_does_not_start_a_track():
    cfg = PreprocessConfig(clutter_enabled=False)
    still = np.array([[2, 0, 0, 0, 10]] * 5 + [[2, 0, 0.5, 0.3, 10]], dtype=np.float32)
    assert CloudPreprocessor(cfg).process(still, 0.0).centre is None
    moving = still.copy()
    moving[0, 3] = -0.2
    assert len(CloudPreprocessor(cfg).process(moving, 0.0).cloud) == 6


def test_static_wall_is_suppressed_and_the_person_is_kept():
    rng = np.random.default_rng(3)
    pre = CloudPreprocessor()
    for frame in range(300):                     # 15 s at 20 Hz
        person = blob(rng, (2.0, 0.0), 20, speed=0.0 if frame % 2 else 0.4)
        result = pre.process(np.r_[person, wall(rng, 5.1, 15)], frame * 0.05)
        if frame == 5:
            assert result.n_clutter == 0
    # After 15 s the wall is clutter; the person (sometimes not moving at all) is not.
    assert result.n_clutter == 15
    assert len(result.cloud) == 20
    np.testing.assert_allclose(result.centre, [2.0, 0.0], atol=0.1)


def test_the_tracked_person_is_kept_when_a_larger_cluster_appears():
    rng = np.random.default_rng(4)
    pre = CloudPreprocessor(PreprocessConfig(clutter_enabled=False))
    for frame in range(10):
        result = pre.process(blob(rng, (2.0, -1.0), 10), frame * 0.1)
    for frame in range(10, 20):
        result = pre.process(np.r_[blob(rng, (2.0, -1.0), 10), blob(rng, (3.0, 1.5), 40)], frame * 0.1)
        assert len(result.cloud) == 10
        assert abs(result.centre[1] + 1.0) < 0.2
    # Without a track the larger cluster is taken.
    fresh = CloudPreprocessor(PreprocessConfig(clutter_enabled=False))
    result = fresh.process(np.r_[blob(rng, (2.0, -1.0), 10), blob(rng, (3.0, 1.5), 40)], 0.0)
    assert len(result.cloud) == 40


def test_the_track_coasts_through_empty_frames_then_times_out():
    rng = np.random.default_rng(5)
    cfg = PreprocessConfig(clutter_enabled=False, track_timeout=1.0)
    pre = CloudPreprocessor(cfg)
    pre.process(blob(rng, (2.0, 0.0), 10), 0.0)
    sparse = blob(rng, (2.0, 0.0), 2)            # too few points for a cluster
    coasting = pre.process(sparse, 0.5)
    assert not coasting.tracking and len(coasting.cloud) == 2
    np.testing.assert_allclose(coasting.centre, pre.track)
    lost = pre.process(sparse, 1.6)
    assert lost.centre is None and len(lost.cloud) == 0


def test_time_going_backwards_resets_the_state():
    rng = np.random.default_rng(6)
    pre = CloudPreprocessor()
    for frame in range(200):
        pre.process(wall(rng, 5.1, 15), frame * 0.1)
    # A wall never moves, so it never becomes the person and ends up in the clutter map.
    assert pre.process(wall(rng, 5.1, 15), 20.0).n_clutter == 15
    assert pre.process(wall(rng, 5.1, 15), 0.0).n_clutter == 0


def test_transform_into_a_target_frame():
    rotation = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    transform = RigidTransform(rotation, np.array([0.0, 0.0, 1.2]))
    cfg = PreprocessConfig(clutter_enabled=False, cluster_min_points=1, person_min_moving=1, z_min=0.0, z_max=3.0,
                           azimuth_max_deg=180.0)
    cloud = np.array([[2.0, 0.5, 0.3, -0.7, 12.0]], dtype=np.float32)
    result = CloudPreprocessor(cfg, transform).process(cloud, 0.0)
    np.testing.assert_allclose(result.cloud, [[-0.5, 2.0, 1.5, -0.7, 12.0]], atol=1e-6)


def test_ground_clusters_join_touching_cells_only():
    xy = np.array([[0.0, 0.0], [0.35, 0.35], [0.75, 0.75], [2.0, 2.0], [2.1, 2.05]])
    labels, count = ground_clusters(xy, 0.4)
    assert count == 2
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]


def test_huge_and_far_flung_clouds_stay_bounded():
    rng = np.random.default_rng(7)
    cloud = np.c_[rng.uniform(-8, 8, (100_000, 2)), rng.uniform(-2, 2, 100_000),
                  rng.normal(size=100_000), rng.uniform(0, 30, 100_000)].astype(np.float32)
    # eps 1 mm over 16 m would be a 16000^2 grid without the bound on the grid side.
    cfg = PreprocessConfig(cluster_eps=0.001, range_min=0.0, range_max=1e6, azimuth_max_deg=180.0)
    result = CloudPreprocessor(cfg).process(cloud, 0.0)
    assert result.n_roi == 100_000 and result.n_clusters >= 1


def test_field_mapping_aliases_overrides_and_missing_fields():
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("snr_db", "<f4"), ("v_doppler_mps", ">f8")])
    points = np.zeros(2, dtype=dtype)
    points["x"], points["snr_db"], points["v_doppler_mps"] = [1, 2], [10, 20], [-0.5, 0.5]
    cloud = to_cloud(points, resolve_fields(dtype.names))
    np.testing.assert_array_equal(cloud, [[1, 0, 0, -0.5, 10], [2, 0, 0, 0.5, 20]])
    no_velocity = resolve_fields(["x", "y", "z", "intensity"])
    assert no_velocity.missing == ("velocity",)
    assert resolve_fields(dtype.names, {"intensity": "x"}).sources[4] == "x"
    with pytest.raises(FieldMappingError, match="no 'z' field"):
        resolve_fields(["x", "y", "intensity"])
    with pytest.raises(FieldMappingError, match="'power' chosen for intensity"):
        resolve_fields(dtype.names, {"intensity": "power"})


def scene(seed, frames):
    """A random scene: a walking person, a static wall, random ghosts and empty frames."""
    rng = np.random.default_rng(seed)
    heading = rng.uniform(-math.pi, math.pi)
    for frame in range(frames):
        t = frame * 0.05
        position = (2.5 + 0.8 * math.cos(heading + 0.3 * t), 0.8 * math.sin(heading + 0.3 * t))
        parts = [wall(rng, 5.1, int(rng.integers(0, 15)))]
        if rng.random() > 0.1:
            parts.append(blob(rng, position, int(rng.integers(0, 40))))
        ghosts = rng.uniform([-1, -8, -3, -2, -5], [9, 8, 3, 2, 40], (int(rng.integers(0, 6)), 5))
        parts.append(ghosts.astype(np.float32))
        yield np.concatenate(parts), t


@given(st.integers(0, 2**32 - 1))
def test_vectorised_preprocessing_matches_the_per_point_oracle(seed):
    cfg = PreprocessConfig(clutter_time_constant=1.0, clutter_threshold=0.3)
    fast, slow = CloudPreprocessor(cfg), ReferencePreprocessor(cfg)
    for cloud, stamp in scene(seed, 40):
        result = fast.process(cloud, stamp)
        person, centre = slow.process(cloud.tolist(), stamp)
        np.testing.assert_array_equal(result.cloud, np.array(person, dtype=np.float32).reshape(-1, 5))
        assert (result.centre is None) == (centre is None)
        if centre is not None:
            np.testing.assert_allclose(result.centre, centre, atol=1e-9)
