"""The student node as its own process: clouds in over DDS, the same skeletons the in-process
streaming student gives, TF frames for RViz, and one clear error for a bad checkpoint."""
from functools import partial

import numpy as np
import pytest
import torch
from conftest import start_node
from geometry_msgs.msg import PoseArray
from ros_probe import StageProbe
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from ros2_radar_pose.ros.pointcloud2 import cloud_to_pointcloud2
from ros2_radar_pose.ros.qos import SENSOR_PUBLICATION, TF
from ros2_radar_pose.ros.skeleton import pose_array_to_skeleton
from ros2_radar_pose.ros.time import from_seconds, to_seconds
from ros2_radar_pose.student.checkpoint import save_checkpoint
from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig
from ros2_radar_pose.student.streaming import StreamingStudent

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CONFIG = StudentConfig(window=6, dim=32, depth=1, heads=2, nb_features=16, point_layers=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = RadarPoseStudent(CONFIG)
    model.set_statistics(torch.tensor([2.5, 0.0, 0.0, 0.0, 15.0]), torch.tensor([1.0, 1.0, 0.6, 0.5, 5.0]),
                         torch.tensor([2.5, 0.0, 0.0]))
    return save_checkpoint(tmp_path_factory.mktemp("student") / "student.pt", model)


start_student = partial(start_node, "student")


class Probe(StageProbe):
    def __init__(self):
        super().__init__(PointCloud2, "/radar_pose/points", PoseArray, "/radar_pose/student/skeleton",
                         SENSOR_PUBLICATION)
        self.tf: list[TFMessage] = []
        self.node.create_subscription(TFMessage, "/tf", self.tf.append, TF)


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


def person_cloud(rng, t):
    points = np.zeros((25, 5), np.float32)
    points[:, :3] = rng.normal([2.5 + 0.02 * t, 0.0, 0.0], [0.15, 0.15, 0.5], (25, 3))
    points[:, 3] = rng.normal(0.0, 0.4, 25)
    points[:, 4] = rng.uniform(5.0, 30.0, 25)
    return points


def test_skeletons_match_the_streaming_student_and_come_with_tf(tmp_path, probe, checkpoint):
    from ros2_radar_pose.student.checkpoint import load_student

    reference = StreamingStudent(load_student(checkpoint))
    rng = np.random.default_rng(1)
    clouds = [person_cloud(rng, t) for t in range(12)]
    with start_student(tmp_path, f"checkpoint:={checkpoint}") as node:
        probe.wait_matched(node, 30.0)
        probe.spin_until(lambda: False, 1.0)          # the node's reader matches a little after ours
        for t, cloud in enumerate(clouds):
            header = Header(stamp=from_seconds(50.0 + 0.05 * t), frame_id="radar_link")
            skeleton = probe.send_and_receive(cloud_to_pointcloud2(cloud, header))
            assert skeleton is not None, node.output()
            expected = reference.push(cloud)
            positions, rotations = pose_array_to_skeleton(skeleton)
            assert to_seconds(skeleton.header.stamp) == pytest.approx(50.0 + 0.05 * t)
            assert skeleton.header.frame_id == "radar_link" and positions.shape == (24, 3)
            np.testing.assert_allclose(positions, expected.positions, atol=1e-4)
            np.testing.assert_allclose(np.abs((rotations * expected.rotations).sum(-1)), 1.0, atol=1e-4)
        assert probe.spin_until(lambda: any(tr.child_frame_id == "pelvis_0" for m in probe.tf for tr in m.transforms),
                                3.0)
        frames = {tr.child_frame_id for m in probe.tf for tr in m.transforms}
        assert {"body_0", "pelvis_0", "left_wrist_0", "head_0"} <= frames
        # after a gap, a window of nothing but empty clouds is nobody: no skeleton
        empty = cloud_to_pointcloud2(np.zeros((0, 5), np.float32), Header(stamp=from_seconds(70.0),
                                                                          frame_id="radar_link"))
        assert probe.send_and_receive(empty, timeout=1.0) is None, node.output()
        # a gap restarts the window, as a fresh streaming student does
        header = Header(stamp=from_seconds(80.0), frame_id="radar_link")
        skeleton = probe.send_and_receive(cloud_to_pointcloud2(clouds[0], header))
        fresh = StreamingStudent(load_student(checkpoint)).push(clouds[0])
        np.testing.assert_allclose(pose_array_to_skeleton(skeleton)[0], fresh.positions, atol=1e-4)
        assert node.stop() == 0


@pytest.mark.parametrize("params, message", [
    ([], "parameter 'checkpoint' is empty"),
    (["checkpoint:=/nonexistent/student.pt"], "no such file"),
    (["joint_set:=mars_19"], "joint_set='smpl_24', but 'mars_19' is wanted"),
])
def test_a_bad_checkpoint_is_one_clear_error(tmp_path, checkpoint, params, message):
    if params and params[0].startswith("joint_set"):
        params = [f"checkpoint:={checkpoint}", *params]
    node = start_student(tmp_path, *params)
    node.process.wait(60)
    assert node.stop() == 2
    output = node.output()
    assert message in output and "Traceback" not in output
