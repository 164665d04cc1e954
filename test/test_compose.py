"""radar-pose run: the launch files' nodes in one process, with their parameters; clean Ctrl-C; one
clear line for a bad parameter."""
import signal

import numpy as np
import pytest
import torch
from conftest import console_script
from geometry_msgs.msg import PoseArray
from ros_probe import ProbeNode
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage

from ros2_radar_pose import topics
from ros2_radar_pose.cli import build_parser
from ros2_radar_pose.data.synthetic import simulate_bag
from ros2_radar_pose.nodes.compose import plan
from ros2_radar_pose.processes import NodeProcess
from ros2_radar_pose.ros.pointcloud2 import pointcloud2_to_array
from ros2_radar_pose.ros.qos import SENSOR_SUBSCRIPTION, TF, TF_STATIC
from ros2_radar_pose.student.checkpoint import save_checkpoint
from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("compose") / "bag"
    simulate_bag(path, minutes=0.2, seed=0)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = RadarPoseStudent(StudentConfig(window=6, dim=32, depth=1, heads=2, nb_features=16, point_layers=2))
    model.set_statistics(torch.tensor([2.5, 0.0, 0.0, 0.0, 15.0]), torch.tensor([1.0, 1.0, 0.6, 0.5, 5.0]),
                         torch.tensor([2.5, 0.0, 0.0]))
    return save_checkpoint(tmp_path_factory.mktemp("student") / "student.pt", model)


def start_run(tmp_path, *args: str) -> NodeProcess:
    """``radar-pose run ARGS --ros-args`` (NodeProcess ends every command line with --ros-args)."""
    return NodeProcess("", [], tmp_path / "run.log", command=[console_script("radar-pose"), "run", *args])


class Probe(ProbeNode):
    def __init__(self):
        super().__init__()
        self.clouds: list[PointCloud2] = []
        self.skeletons: list[PoseArray] = []
        self.frames: set[str] = set()
        self.node.create_subscription(PointCloud2, topics.POINTS, self.clouds.append, SENSOR_SUBSCRIPTION)
        self.node.create_subscription(PoseArray, topics.SKELETON, self.skeletons.append, SENSOR_SUBSCRIPTION)
        self.node.create_subscription(TFMessage, topics.TF, self.on_tf, TF)
        self.static: list[TFMessage] = []
        self.node.create_subscription(TFMessage, topics.TF_STATIC, self.static.append, TF_STATIC)

    def on_tf(self, msg: TFMessage) -> None:
        self.frames.update(transform.child_frame_id for transform in msg.transforms)


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


def test_the_plan_follows_the_launch_files():
    names = lambda specs: [spec.name for spec in specs]  # noqa: E731
    assert names(plan()) == ["radar_ingest"]
    specs = {spec.name: spec for spec in plan(radar_topic="/ti_mmwave/radar_scan_pcl", student_checkpoint="s.pt",
                                              bag="b", rate=2, mount_xyz=[0, 0, 1.5])}
    assert list(specs) == ["radar_ingest", "student", "physics", "bag_player"]   # the player last: all listen
    assert specs["radar_ingest"].remaps == {"radar/points": "/ti_mmwave/radar_scan_pcl"}
    assert specs["student"].overrides == {"checkpoint": "s.pt", "device": "cpu", "publish_tf": False}
    assert specs["physics"].overrides == {"mount_translation": [0.0, 0.0, 1.5]}
    assert specs["bag_player"].overrides == {"bag": "b", "rate": 2.0, "loop": False}
    no_physics = {spec.name: spec for spec in plan(student_checkpoint="s.pt", physics=False)}
    assert "physics" not in no_physics and no_physics["student"].overrides["publish_tf"] is True
    teacher = {spec.name: spec for spec in plan(teacher=True, image_topic="/camera/color/image_raw")}["teacher"]
    assert teacher.overrides["backend"] == "blazepose"
    assert teacher.remaps["camera/image_raw"] == "/camera/color/image_raw"
    mounted = {spec.name: spec for spec in plan(student_checkpoint="s.pt", publish_mount=True, mount_rpy=[0, 0.2, 0])}
    assert list(mounted) == ["radar_ingest", "radar_mount", "student", "physics"]
    assert mounted["radar_mount"].overrides == {"rpy": [0.0, 0.2, 0.0]}          # the rest from the params file
    assert mounted["physics"].overrides == {"mount_rpy": [0.0, 0.2, 0.0]}
    args = build_parser().parse_args(["run", "--bag", "b", "--no-physics", "--ros-args", "--log-level", "debug"])
    assert (args.physics, args.ros_args) == (False, ["--log-level", "debug"])


@pytest.mark.ros
@pytest.mark.slow
def test_a_bag_through_radar_ingest_then_ctrl_c(tmp_path, probe, bag):
    with start_run(tmp_path, "--bag", str(bag), "--loop") as run:
        person = lambda: any(len(pointcloud2_to_array(c)) for c in probe.clouds)  # noqa: E731
        assert probe.spin_until(lambda: person() or not run.alive(), 25.0) and person(), run.output()
        assert probe.clouds[-1].header.frame_id == topics.RADAR_FRAME
        run.process.send_signal(signal.SIGINT)
        assert run.process.wait(10) == 0, run.output()
    output = run.output()
    assert "running radar_ingest, bag_player in one process" in output and "Traceback" not in output


@pytest.mark.ros
@pytest.mark.slow
def test_the_student_and_physics_publish_the_skeleton_and_tf(tmp_path, probe, bag, checkpoint):
    with start_run(tmp_path, "--bag", str(bag), "--loop", "--student-checkpoint", str(checkpoint)) as run:
        arrived = lambda: probe.skeletons and {"body_0", "pelvis_0", "head_0"} <= probe.frames  # noqa: E731
        assert probe.spin_until(lambda: arrived() or not run.alive(), 25.0) and arrived(), run.output()
        assert len(probe.skeletons[-1].poses) == 24
        assert probe.skeletons[-1].header.frame_id == topics.RADAR_FRAME
        assert run.stop() == 0, run.output()
    assert "running radar_ingest, student, physics, bag_player" in run.output()


@pytest.mark.ros
@pytest.mark.slow
def test_publish_mount_latches_the_radar_mount_on_tf_static(tmp_path, probe):
    mount = ["--mount-xyz", "0.5", "0", "1.5", "--mount-rpy", "0", "0.2", "0"]
    with start_run(tmp_path, "--publish-mount", *mount) as run:
        # radar_mount latches the mount while it is built, before the runner logs that it runs
        assert probe.spin_until(lambda: (probe.static and "in one process" in run.output()) or not run.alive(),
                                25.0) and probe.static, run.output()
        assert run.stop() == 0, run.output()
    [mount] = probe.static[0].transforms
    assert (mount.header.frame_id, mount.child_frame_id) == (topics.WORLD_FRAME, topics.RADAR_FRAME)
    t, q = mount.transform.translation, mount.transform.rotation
    assert [t.x, t.y, t.z] == pytest.approx([0.5, 0.0, 1.5])
    assert [q.x, q.y, q.z, q.w] == pytest.approx([0.0, np.sin(0.1), 0.0, np.cos(0.1)])    # pitch 0.2 rad
    assert "running radar_ingest, radar_mount in one process" in run.output()


@pytest.mark.ros
@pytest.mark.slow
def test_a_bad_parameter_is_one_line_and_exit_2(tmp_path):
    run = start_run(tmp_path, "--student-checkpoint", "/nonexistent/student.pt")
    run.process.wait(60)
    assert run.stop() == 2
    output = run.output()
    fatal = [line for line in output.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and "[student]" in fatal[0] and "no such file" in fatal[0], output
    assert "Traceback" not in output
