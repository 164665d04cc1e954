"""The teacher node as its own process: a real photograph in over DDS, the teacher's skeleton out
in the radar frame with the image's stamp; the camera's pose on /tf_static; the newest image only
when busy; and one clear error for a backend it cannot build."""
import math
from functools import partial

import numpy as np
import pytest
from conftest import start_node
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from ros_probe import StageProbe
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.ros.qos import DIAGNOSTICS, SENSOR_PUBLICATION, TF, TF_STATIC
from ros2_radar_pose.ros.skeleton import pose_array_to_skeleton
from ros2_radar_pose.ros.time import from_seconds, to_seconds
from ros2_radar_pose.teacher.camera import PinholeCamera

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERA = PinholeCamera.from_field_of_view(512, 512, math.radians(60))


start_teacher = partial(start_node, "teacher")


class Probe(StageProbe):
    def __init__(self):
        super().__init__(Image, "/camera/image_raw", PoseArray, "/radar_pose/teacher/skeleton", SENSOR_PUBLICATION)
        self.info = self.node.create_publisher(CameraInfo, "/camera/camera_info", SENSOR_PUBLICATION)
        self.roi = self.node.create_publisher(RegionOfInterest, "/radar_pose/teacher/person_roi", SENSOR_PUBLICATION)
        self.static: list[TFMessage] = []
        self.tf: list[TFMessage] = []
        self.node.create_subscription(TFMessage, "/tf", self.tf.append, TF)
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(TFMessage, "/tf_static", self.static.append, TF_STATIC)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, DIAGNOSTICS)

    def send_camera_info(self, stamp: float, camera: PinholeCamera = CAMERA) -> None:
        info = CameraInfo(header=Header(stamp=from_seconds(stamp), frame_id="camera_optical_frame"),
                          width=camera.width, height=camera.height, distortion_model="plumb_bob")
        info.k = camera.matrix.reshape(-1).tolist()
        self.info.publish(info)
        self.spin_until(lambda: False, 0.1)

    def teacher_values(self) -> list[dict[str, str]]:
        """The teacher's diagnostic values, oldest first."""
        return [{kv.key: kv.value for kv in status.values} for array in self.diagnostics
                for status in array.status if status.name.startswith("teacher")]


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def astronaut():
    pytest.importorskip("mediapipe")
    from skimage.data import astronaut

    return astronaut()


def image_message(pixels: np.ndarray, stamp: float) -> Image:
    """As a camera driver sends it: bgr8."""
    height, width, _ = pixels.shape
    return Image(header=Header(stamp=from_seconds(stamp), frame_id="camera_optical_frame"), height=height,
                 width=width, encoding="bgr8", step=width * 3, data=pixels[..., ::-1].tobytes())


def test_a_photograph_gives_a_skeleton_in_the_radar_frame(tmp_path, probe, astronaut):
    with start_teacher(tmp_path, "camera.xyz:=[0.0, 0.1, 1.2]", "camera.publish_static:=true",
                       "publish_tf:=true", "diagnostics_period:=0.5") as node:
        probe.wait_matched(node, 60.0)
        probe.spin_until(lambda: False, 1.0)
        probe.send_camera_info(10.0)
        skeleton = None
        for _ in range(10):                      # a best-effort 0.8 MB image may be lost on the way
            skeleton = probe.send_and_receive(image_message(astronaut, 10.0), timeout=5.0)
            if skeleton is not None:
                break
        assert skeleton is not None, (node.output(), probe.teacher_values()[-1:])
        assert to_seconds(skeleton.header.stamp) == pytest.approx(10.0)
        assert skeleton.header.frame_id == "radar_link"
        positions, rotations = pose_array_to_skeleton(skeleton)
        assert positions.shape == (24, 3) and np.allclose(np.linalg.norm(rotations, axis=1), 1.0, atol=1e-5)
        joint = SMPL_24.index
        assert 0.5 < positions[joint("pelvis"), 0] < 10.0                   # in front of the radar
        assert positions[joint("head"), 2] > positions[joint("pelvis"), 2] + 0.3
        assert positions[joint("left_shoulder"), 1] < positions[joint("right_shoulder"), 1]   # she faces us
        # the camera's pose from the parameters is on /tf_static
        assert probe.spin_until(lambda: probe.static, 3.0)
        transform = probe.static[0].transforms[0]
        assert (transform.header.frame_id, transform.child_frame_id) == ("radar_link", "camera_optical_frame")
        assert transform.transform.translation.z == pytest.approx(1.2)
        assert probe.spin_until(lambda: any(t.child_frame_id == "pelvis_teacher_0" for m in probe.tf
                                            for t in m.transforms), 3.0)
        # a detector's box wins over the full frame: one on the empty top-left corner finds nobody
        probe.roi.publish(RegionOfInterest(x_offset=0, y_offset=0, width=40, height=40))
        probe.spin_until(lambda: False, 0.2)
        assert probe.send_and_receive(image_message(astronaut, 11.0), timeout=3.0) is None
        assert probe.spin_until(lambda: any(v["no_person"] == "1" for v in probe.teacher_values()), 3.0)
        assert node.stop() == 0


def test_a_busy_teacher_labels_the_newest_image_and_counts_the_others(tmp_path, probe, astronaut):
    with start_teacher(tmp_path, "diagnostics_period:=0.5") as node:
        probe.wait_matched(node, 60.0)
        probe.spin_until(lambda: False, 1.0)
        # Half-size images 10 ms apart: faster than BlazePose runs, slow enough for DDS to deliver all.
        small = np.ascontiguousarray(astronaut[::2, ::2])
        probe.send_camera_info(20.0, PinholeCamera.from_field_of_view(256, 256, math.radians(60)))
        for k in range(12):
            probe.publisher.publish(image_message(small, 20.0 + 0.01 * k))
            probe.spin_until(lambda: False, 0.01)
        stamps = lambda: [to_seconds(s.header.stamp) for s in probe.received]  # noqa: E731
        assert probe.spin_until(lambda: stamps() and stamps()[-1] == pytest.approx(20.11), 30.0), stamps()
        assert len(probe.received) < 12

        def dropped() -> int:
            return max((int(values["dropped_busy"]) for values in probe.teacher_values()), default=0)
        # images replaced while the network ran are counted (the subscription's depth-2 queue may
        # also overwrite some before the node sees them)
        assert probe.spin_until(lambda: dropped() >= 1, 5.0), probe.teacher_values()[-1:]
        assert dropped() + len(probe.received) <= 12
        assert node.stop() == 0


@pytest.mark.parametrize("params, message", [
    (["backend:=openpose"], "unknown teacher backend 'openpose'"),
    (["backend:=hybrik"], "SMPL model file"),
    (["backend:=hybrik", "smpl_model:=/nonexistent/SMPL_NEUTRAL.pkl", "hybrik_checkpoint:=/nonexistent/h.pth"],
     "/nonexistent/"),
])
def test_a_backend_that_cannot_be_built_is_one_clear_error(tmp_path, params, message):
    node = start_teacher(tmp_path, *params)
    node.process.wait(60)
    assert node.stop() == 2
    output = node.output()
    assert message in output and "Traceback" not in output
