"""The physics node as its own process: the student's skeleton in over DDS, a skeleton on the floor
out, the same one the in-process tracker gives, pass-through when disabled, bad input dropped."""
from functools import partial

import numpy as np
import pytest
import torch
from conftest import start_node
from geometry_msgs.msg import PoseArray
from ros_probe import StageProbe
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.data.motions import Placement, make_motion
from ros2_radar_pose.physics.humanoid import BodyShape
from ros2_radar_pose.physics.metrics import sole_depth
from ros2_radar_pose.physics.tracker import FloorFrame, PhysicsTracker
from ros2_radar_pose.ros.qos import SENSOR_PUBLICATION, TF
from ros2_radar_pose.ros.skeleton import pose_array_to_skeleton, skeleton_to_pose_array
from ros2_radar_pose.ros.time import from_seconds

pytestmark = [pytest.mark.ros, pytest.mark.slow]
FLOOR = FloorFrame((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def squat():
    """A squat 3 m in front of the radar, radar frame: positions (T, 24, 3), quaternions (T, 24, 4)."""
    body = AnthropometricBody()
    motion = make_motion("squat", body, fps=20.0, seed=0, start=Placement.facing_sensor(3.0, 0.0))
    with torch.no_grad():
        pose = body(torch.zeros(len(motion), 4, dtype=torch.float64),
                    torch.as_tensor(motion.local_rotations).double(), torch.as_tensor(motion.translation).double())
    positions, rotations = FLOOR.from_floor(pose.joints[:30, :24].numpy(), pose.global_rotations[:30].numpy())
    return positions, Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_quat().reshape(-1, 24, 4)


class Probe(StageProbe):
    def __init__(self):
        super().__init__(PoseArray, "/radar_pose/student/skeleton", PoseArray, "/radar_pose/skeleton",
                         SENSOR_PUBLICATION)
        self.tf: list[TFMessage] = []
        self.node.create_subscription(TFMessage, "/tf", self.tf.append, TF)


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


start_physics = partial(start_node, "physics")


def wait_matched(probe, node):
    probe.wait_matched(node, 30.0)
    probe.spin_until(lambda: False, 1.0)          # the node's reader matches a little after ours


def test_the_node_gives_what_the_tracker_gives_on_the_floor(tmp_path, probe, squat):
    positions, quaternions = squat
    sunk = positions - [0.0, 0.0, 0.05]            # the estimate's feet 5 cm under the floor
    shape = BodyShape.of(AnthropometricBody())
    with start_physics(tmp_path) as node, PhysicsTracker(shape, None, FLOOR) as reference:
        wait_matched(probe, node)
        # a skeleton of another joint set is dropped, and the node goes on
        bad = skeleton_to_pose_array(sunk[0, :19], quaternions[0, :19], Header(frame_id="radar_link"))
        assert probe.send_and_receive(bad, timeout=1.0) is None
        for t in range(len(sunk)):
            header = Header(stamp=from_seconds(10.0 + 0.05 * t), frame_id="radar_link")
            skeleton = probe.send_and_receive(skeleton_to_pose_array(sunk[t], quaternions[t], header))
            assert skeleton is not None, node.output()
            out, out_quaternions = pose_array_to_skeleton(skeleton)
            expected = reference.step(sunk[t], Rotation.from_quat(quaternions[t]).as_matrix(), 10.0 + 0.05 * t)
            np.testing.assert_allclose(out, expected.positions, atol=1e-5)
            assert skeleton.header.frame_id == "radar_link" and skeleton.header.stamp == header.stamp
        floor_positions = FLOOR.to_floor(out, np.eye(3))[0]
        assert sole_depth(floor_positions[None], shape.clearance).min() > -0.005
        assert probe.spin_until(lambda: any(tr.child_frame_id == "pelvis_0" for m in probe.tf for tr in m.transforms),
                                3.0)
        assert node.stop() == 0


def test_disabled_passes_the_skeleton_through(tmp_path, probe, squat):
    positions, quaternions = squat
    with start_physics(tmp_path, "enabled:=false") as node:
        wait_matched(probe, node)
        header = Header(stamp=from_seconds(3.0), frame_id="radar_link")
        skeleton = probe.send_and_receive(skeleton_to_pose_array(positions[5], quaternions[5], header))
        assert skeleton is not None, node.output()
        out, out_quaternions = pose_array_to_skeleton(skeleton)
        np.testing.assert_allclose(out, positions[5], atol=1e-9)
        np.testing.assert_allclose(out_quaternions, quaternions[5], atol=1e-9)
        assert node.stop() == 0


def test_bad_settings_are_one_clear_error(tmp_path):
    node = start_physics(tmp_path, "tracker.physics_hz:=0.0")
    node.process.wait(60)
    assert node.stop() == 2
    assert "physics_hz must be finite and > 0" in node.output() and "Traceback" not in node.output()


def test_the_parameter_file_lists_every_physics_setting_with_its_default():
    import dataclasses
    from pathlib import Path

    import yaml

    from ros2_radar_pose.physics.contacts import ContactConfig
    from ros2_radar_pose.physics.filters import OneEuroConfig
    from ros2_radar_pose.physics.tracker import TrackerConfig

    config = Path(__file__).resolve().parent.parent / "config" / "radar_pose.yaml"
    params = yaml.safe_load(config.read_text())["physics"]["ros__parameters"]
    tracker = {f.name: f.default for f in dataclasses.fields(TrackerConfig) if f.name not in ("contacts", "smoothing")}
    assert params["tracker"] == pytest.approx(tracker)
    assert params["contacts"] == pytest.approx(dataclasses.asdict(ContactConfig()))
    assert params["smoothing"] == pytest.approx(dataclasses.asdict(OneEuroConfig()))
