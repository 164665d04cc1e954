"""The MARS CNN baseline: its feature map by hand, its label layout, determinism, and that it learns."""
import numpy as np
import pytest
import torch

from bench.mars_cnn import (
    MarsCNN,
    from_mars_labels,
    mars_feature_map,
    predict_mars_cnn,
    to_mars_labels,
    train_mars_cnn,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: this tiny model gains nothing from more, and a busy machine makes them spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def db(peak: float) -> float:
    """The importer's intensity: 10 log10(1 + peak)."""
    return 10.0 * np.log10(1.0 + peak)


def test_feature_map_sorts_by_mars_x_then_y_then_z_and_pads_with_zeros():
    # ROS x, y, z, velocity, intensity (dB); MARS axes are (-y_ros, x_ros, z).
    cloud = np.array([
        [1.9, -0.3, 0.2, 0.5, db(100)],     # MARS (0.3, 1.9, 0.2)
        [2.0, 0.5, 0.1, -0.3, db(20)],      # MARS (-0.5, 2.0, 0.1): smallest x, first
        [2.1, -0.3, -0.5, 0.0, db(7)],      # MARS (0.3, 2.1, -0.5): same x as row 0, larger y
        [1.9, -0.3, -0.1, 1.0, db(1000)],   # MARS (0.3, 1.9, -0.1): ties row 0 on x and y, smaller z
    ], dtype=np.float32)
    expected = np.array([
        [-0.5, 2.0, 0.1, -0.3, 20],
        [0.3, 1.9, -0.1, 1.0, 1000],
        [0.3, 1.9, 0.2, 0.5, 100],
        [0.3, 2.1, -0.5, 0.0, 7],
    ])
    maps = mars_feature_map([cloud, np.zeros((0, 5), np.float32)])
    assert maps.shape == (2, 8, 8, 5) and maps.dtype == np.float32
    np.testing.assert_allclose(maps[0, 0, :4], expected, rtol=1e-5, atol=1e-5)   # row-major: point k at [k//8, k%8]
    assert not maps[0, 0, 4:].any() and not maps[0, 1:].any()                     # zero padding
    assert not maps[1].any()                                                       # an empty cloud
    assert mars_feature_map([]).shape == (0, 8, 8, 5)


def test_feature_map_of_more_than_64_points_keeps_the_64_strongest_sorted():
    rng = np.random.default_rng(0)
    cloud = np.column_stack([rng.uniform(1, 3, 70), rng.uniform(-1, 1, 70), rng.uniform(-1, 1, 70),
                             rng.uniform(-1, 1, 70), db(rng.permutation(70) + 1.0)]).astype(np.float32)
    flat = mars_feature_map([cloud])[0].reshape(64, 5)
    assert np.all(np.abs(flat[:, :3]).sum(axis=1) > 0)                            # 64 real points, no padding
    np.testing.assert_allclose(np.sort(flat[:, 4]), np.arange(7, 71), rtol=1e-4)  # peaks 1..6 dropped
    assert np.array_equal(np.lexsort((flat[:, 2], flat[:, 1], flat[:, 0])), np.arange(64))
    kept = cloud[10.0 ** (cloud[:, 4] / 10) - 1 > 6.5]
    np.testing.assert_allclose(np.sort(flat[:, 0]), np.sort(-kept[:, 1]), atol=1e-6)   # MARS x = -ROS y


def mars_root():
    from ros2_radar_pose.data.mars import default_root
    try:
        return default_root() if (default_root() / "woutlier").is_dir() else None
    except FileNotFoundError:
        return None


@pytest.mark.skipif(mars_root() is None, reason="no MARS data (../shared/data/mars or $RADAR_POSE_MARS)")
def test_feature_map_of_real_mars_frames_holds_their_points_and_integer_peaks():
    from ros2_radar_pose.data.mars import load_mars

    recording = load_mars(1, "test", "woutlier")
    flat = mars_feature_map(recording.clouds[:300]).reshape(300, 64, 5)
    filled = flat[..., 4] > 0                                     # MARS peaks are >= 2, padding is 0
    np.testing.assert_array_equal(filled.sum(axis=1), recording.points_per_frame[:300])
    peaks = flat[..., 4][filled]
    np.testing.assert_allclose(peaks, np.round(peaks), atol=2e-3)   # the dB conversion is undone
    for t in (0, 150, 299):
        n = recording.points_per_frame[t]
        assert np.array_equal(np.lexsort(flat[t, :n, 2::-1].T), np.arange(n))


def test_labels_are_x_then_y_then_z_blocks_in_mars_axes_and_round_trip():
    joints = np.random.default_rng(1).normal(size=(3, 19, 3)).astype(np.float32)
    labels = to_mars_labels(joints)
    assert labels.shape == (3, 57)
    np.testing.assert_array_equal(labels[:, :19], -joints[..., 1])
    np.testing.assert_array_equal(labels[:, 19:38], joints[..., 0])
    np.testing.assert_array_equal(labels[:, 38:], joints[..., 2])
    np.testing.assert_array_equal(from_mars_labels(labels), joints)


def test_model_maps_feature_maps_to_57_values():
    model = MarsCNN()
    assert model(torch.zeros(4, 8, 8, 5)).shape == (4, 57)
    assert model.eval()(torch.zeros(1, 8, 8, 5)).shape == (1, 57)


def synthetic(frames: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Clouds scattered about a moving centre; the 19 joints are that centre plus fixed offsets."""
    rng = np.random.default_rng(seed)
    offsets = np.random.default_rng(99).normal(scale=0.4, size=(19, 3))
    centres = np.column_stack([rng.uniform(1.5, 3.0, frames), rng.uniform(-1, 1, frames),
                               rng.uniform(-0.5, 0.5, frames)])
    clouds = []
    for centre in centres:
        n = rng.integers(10, 65)
        xyz = centre + rng.normal(scale=0.05, size=(n, 3))
        clouds.append(np.column_stack([xyz, rng.normal(size=n), rng.uniform(0, 3, n)]).astype(np.float32))
    return clouds, (centres[:, None] + offsets).astype(np.float32)


def test_training_is_deterministic_under_a_seed():
    clouds, joints = synthetic(100, seed=0)
    first, again, other = (predict_mars_cnn(train_mars_cnn(clouds, joints, epochs=2, batch_size=32,
                                                           seed=seed, progress=False), clouds[:8])
                           for seed in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (8, 19, 3)


def test_a_few_epochs_learn_joints_that_follow_the_cloud():
    # 600 Adam steps (about 5 s on one core). MARS's recipe learns slowly: lr 1e-3 has to carry
    # the output bias to the 2 m depth, and dropout before BatchNorm biases the eval-mode output,
    # so after this little training the error is a quarter to a third of the mean pose's.
    clouds, joints = synthetic(384, seed=0)
    test_clouds, test_joints = synthetic(256, seed=1)
    model = train_mars_cnn(clouds, joints, epochs=50, batch_size=32, progress=False)
    mean_pose_error = np.abs(joints.mean(axis=0) - test_joints).mean()
    error = np.abs(predict_mars_cnn(model, test_clouds) - test_joints).mean()
    assert error < 0.4 * mean_pose_error, (error, mean_pose_error)


def test_empty_input_and_mismatched_lengths():
    assert predict_mars_cnn(MarsCNN(), []).shape == (0, 19, 3)
    clouds, joints = synthetic(4, seed=0)
    with pytest.raises(ValueError, match="label frames"):
        train_mars_cnn(clouds, joints[:3], epochs=1, progress=False)
