"""Synthetic bags: what radar-pose simulate writes, read back by us and by an independent reader."""
import subprocess

import numpy as np
import pytest
from conftest import console_script
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from ros2_radar_pose import topics
from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.data.bags import BagReader
from ros2_radar_pose.data.sync import synchronized
from ros2_radar_pose.data.synthetic import START_NS, generate_sessions, simulate_bag
from ros2_radar_pose.radar.cloud_stats import distance_to_bones
from ros2_radar_pose.radar.simulator import BODY, RadarSimConfig

MINUTES = 0.25          # 300 frames at 20 Hz


@pytest.fixture(scope="module")
def sessions():
    return list(generate_sessions(2, MINUTES, seed=5))


def test_sessions_follow_each_other_in_time(sessions):
    first, second = sessions
    assert len(first) == len(second) == 300
    assert first.stamps_ns[0] == START_NS
    np.testing.assert_array_equal(np.diff(first.stamps_ns), 50_000_000)
    assert second.stamps_ns[0] > first.stamps_ns[-1]
    assert not np.allclose(first.truth_positions[0], second.truth_positions[0])   # another person


def test_radar_points_of_the_body_surround_the_true_skeleton(sessions):
    session = sessions[0]
    body = [c[lab == BODY] for c, lab in zip(session.clouds, session.cloud_labels)]
    points = np.concatenate(body)[:, :3]
    frame = np.concatenate([np.full(len(c), t) for t, c in enumerate(body)])
    distance = distance_to_bones(points, session.truth_positions, SMPL_24.parents, frame)
    assert np.median(distance) < 0.3                         # on the body, give or take the angle noise
    counts = np.array([len(c) for c in session.clouds])
    assert 5 <= np.median(counts) <= 100


def test_teacher_errs_like_a_camera(sessions):
    session = sessions[0]
    labelled = session.teacher_labelled
    assert 0.8 < labelled.mean() < 1.0
    error = np.linalg.norm(session.teacher_positions[labelled] - session.truth_positions[labelled], axis=-1)
    assert 0.03 < np.median(error) < 0.2                     # a few centimetres to a decimetre


def test_truth_lives_in_the_radar_frame(sessions):
    positions = sessions[0].truth_positions
    assert np.all(positions[:, 0, 0] > 0.5)                  # in front of the radar
    feet = positions[:, [SMPL_24.index("left_foot"), SMPL_24.index("right_foot")], 2]
    # the radar sits 1 m above the floor the feet stand on
    assert np.median(feet.min(axis=1)) == pytest.approx(-RadarSimConfig().mount_translation[2], abs=0.12)


@pytest.mark.slow
def test_bag_reads_back_the_same_through_ours_and_mcap(tmp_path):
    path = tmp_path / "synthetic"
    counts = simulate_bag(path, subjects=1, minutes=MINUTES, seed=3)
    session = next(generate_sessions(1, MINUTES, seed=3))
    assert counts[topics.RADAR_POINTS] == counts[topics.GROUND_TRUTH_SKELETON] == 300
    assert counts[topics.TEACHER_SKELETON] == int(session.teacher_labelled.sum())
    with BagReader(path) as reader:
        assert set(reader.topics) == {topics.RADAR_POINTS, topics.TEACHER_SKELETON, topics.GROUND_TRUTH_SKELETON,
                                      topics.TF_STATIC}
        clouds = list(reader.clouds(topics.RADAR_POINTS))
        for t in (0, 150, 299):
            np.testing.assert_array_equal(clouds[t].cloud, session.clouds[t])
            assert clouds[t].stamp_ns == session.stamps_ns[t]
        (mount,) = reader.static_transforms()
        assert (mount.parent, mount.child) == (topics.WORLD_FRAME, topics.RADAR_FRAME)
        pairs = list(synchronized(reader))
        assert len(pairs) == 300
        matched = [p for p in pairs if p.skeletons[topics.TEACHER_SKELETON] is not None]
        assert len(matched) == counts[topics.TEACHER_SKELETON]
    mcap_file = next(path.glob("*.mcap"))
    with open(mcap_file, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        truth = [m for _, channel, _, m in reader.iter_decoded_messages(topics=[topics.GROUND_TRUTH_SKELETON])]
    assert len(truth) == 300
    pose = truth[42].poses[3]
    np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z],
                               session.truth_positions[42, 3], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_simulate_command_writes_a_bag_with_a_progress_bar(tmp_path):
    out = tmp_path / "cli_bag"
    command = [console_script("radar-pose"), "simulate", "--out", str(out), "--subjects", "1", "--minutes", "0.1",
               "--seed", "1", "--storage", "sqlite3", "--humble"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "frame" in result.stderr and "120/120" in result.stderr           # tqdm's bar
    assert f"{topics.RADAR_POINTS} 120" in result.stdout
    assert "version: 8" in (out / "metadata.yaml").read_text()
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "exists" in again.stderr                # nothing overwritten silently
