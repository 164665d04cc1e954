"""radar_ingest as its own process (its console script), talking over DDS."""
import subprocess
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from builtin_interfaces.msg import Time
from conftest import console_script, start_node
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from ros_probe import StageProbe
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from ros2_radar_pose.processes import NodeProcess
from ros2_radar_pose.radar.demo_scene import make_demo_stream
from ros2_radar_pose.radar.fields import TI_MMWAVE  # ti_mmwave_rospkg's layout
from ros2_radar_pose.ros.pointcloud2 import array_to_pointcloud2, cloud_to_pointcloud2, pointcloud2_to_array
from ros2_radar_pose.ros.qos import DIAGNOSTICS, SENSOR_PUBLICATION
from ros2_radar_pose.ros.time import from_seconds

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "radar_pose.yaml"


start_ingest = partial(start_node, "radar_ingest", params_file=CONFIG)


class Probe(StageProbe):
    """The test's side of the graph: publishes raw clouds, collects outputs and diagnostics."""

    def __init__(self):
        super().__init__(PointCloud2, "/radar/points", PointCloud2, "/radar_pose/points", SENSOR_PUBLICATION,
                         reply_timeout=3.0)
        self.clouds: list[PointCloud2] = self.received
        self.diagnostics: list[dict] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, DIAGNOSTICS)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith("radar_ingest"):
                self.diagnostics.append({"level": status.level, "message": status.message,
                                         **{kv.key: kv.value for kv in status.values}})

    def wait_for_ingest(self, process: NodeProcess) -> None:
        """Wait until the node is up and both directions are matched.

        Matching seen from our side does not mean the node's reader has matched our writer yet, so
        one empty cloud (stamp 1.0) is sent until its output comes back; it counts as one empty
        frame in the node's diagnostics.
        """
        self.wait_matched(process, 20.0)
        primer = cloud_to_pointcloud2(np.zeros((0, 5), np.float32), Header(stamp=from_seconds(1.0)))
        for _ in range(50):
            if self.send_and_receive(primer, timeout=0.2) is not None:
                self.clouds.clear()
                return
        raise AssertionError(f"radar_ingest never answered:\n{process.output()}")


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


def ti_mmwave_cloud(rng, centre, n_person=20, n_wall=8):
    """A cloud in ti_mmwave_rospkg's layout: a moving person and static wall spots."""
    points = np.zeros(n_person + n_wall, dtype=TI_MMWAVE)
    person = rng.normal([centre[0], centre[1], 0.0], [0.15, 0.15, 0.5], (n_person, 3))
    wall = np.c_[np.full(n_wall, 4.5), np.linspace(-1.5, 1.5, n_wall), np.zeros(n_wall)]
    xyz = np.r_[person, wall]
    points["x"], points["y"], points["z"] = xyz.T
    points["velocity"][:n_person] = rng.choice([-0.4, 0.3], n_person)
    points["intensity"] = rng.uniform(5, 30, len(points))
    return points


def test_filtered_clouds_come_back_with_stamp_frame_and_person(tmp_path, probe):
    rng = np.random.default_rng(0)
    with start_ingest(tmp_path) as ingest:
        probe.wait_for_ingest(ingest)
        for frame in range(30):
            points = ti_mmwave_cloud(rng, (2.0 + 0.01 * frame, -0.5))
            frame_id = "" if frame % 2 else "ti_mmwave_0"
            # epoch-sized stamps, to the nanosecond: later stages match frames by stamp, so it must
            # come back exactly (through float seconds it came back up to 128 ns off)
            stamp = Time(sec=1_700_000_000 + frame, nanosec=50_000_001 * (frame % 19))
            header = Header(stamp=stamp, frame_id=frame_id)
            out = probe.send_and_receive(array_to_pointcloud2(points, header))
            assert out is not None, ingest.output()
            assert (out.header.stamp.sec, out.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)
            assert out.header.frame_id == (frame_id or "radar_link")
            assert [f.name for f in out.fields] == ["x", "y", "z", "velocity", "intensity"]
            got = pointcloud2_to_array(out)
            # Exactly the person's 20 points, unchanged (velocity and intensity from their offsets).
            assert len(got) == 20
            np.testing.assert_array_equal(np.sort(got["x"]), np.sort(points["x"][:20]))
            np.testing.assert_array_equal(np.sort(got["velocity"]), np.sort(points["velocity"][:20]))
            np.testing.assert_array_equal(np.sort(got["intensity"]), np.sort(points["intensity"][:20]))
        assert probe.spin_until(lambda: probe.diagnostics and probe.diagnostics[-1]["frames"] == "31", 3.0)
        status = probe.diagnostics[-1]
        assert float(status["points_in_per_frame"]) == pytest.approx(28.0 * 30 / 31, rel=1e-3)
        assert float(status["points_out_per_frame"]) == pytest.approx(20.0 * 30 / 31, rel=1e-3)
        assert status["frames_dropped"] == "0" and status["frames_empty"] == "1"


def bad_clouds():
    """Malformed, empty, non-finite and huge clouds, each with the problem kind it must raise."""
    good = cloud_to_pointcloud2(np.ones((4, 5), np.float32))
    short = cloud_to_pointcloud2(np.ones((4, 5), np.float32))
    short.data = short.data[:50]
    unknown = cloud_to_pointcloud2(np.ones((4, 5), np.float32))
    unknown.fields[3].datatype = 42
    no_z = array_to_pointcloud2(np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")]))
    nan = np.ones((6, 5), np.float32)
    nan[2, 0] = np.nan
    nan[3, 3] = np.inf
    bad_step = cloud_to_pointcloud2(np.ones((4, 5), np.float32))
    bad_step.fields.append(PointField(name="extra", offset=18, datatype=PointField.FLOAT32, count=1))
    return [
        (short, "short_data", False), (unknown, "unknown_datatype", False), (no_z, "missing_field", False),
        (cloud_to_pointcloud2(nan), "non_finite_points", True),
        (bad_step, "bad_layout", False), (cloud_to_pointcloud2(np.zeros((0, 5), np.float32)), None, True),
        (good, None, True),
    ]


def test_bad_input_is_dropped_reported_and_the_node_keeps_running(tmp_path, probe):
    with start_ingest(tmp_path, "stale_after:=30.0") as ingest:
        probe.wait_for_ingest(ingest)
        for index, (msg, kind, passes) in enumerate(bad_clouds()):
            msg.header.stamp = from_seconds(50.0 + index)
            out = probe.send_and_receive(msg, timeout=3.0 if passes else 0.5)
            assert (out is not None) == passes, (kind, ingest.output())
            assert ingest.alive(), ingest.output()
        # A 100k-point cloud (2 MB) rarely survives best-effort delivery over loopback, so whether
        # the node saw it is not asserted here (see the in-process test); it must not hurt the node.
        huge = cloud_to_pointcloud2(np.ones((100_000, 5), np.float32), Header(stamp=from_seconds(59.0)))
        assert probe.send_and_receive(huge, timeout=1.0) is None
        # Still working after all of that.
        out = probe.send_and_receive(array_to_pointcloud2(ti_mmwave_cloud(np.random.default_rng(1), (2, 0)),
                                                          Header(stamp=from_seconds(60.0))))
        assert out is not None and len(pointcloud2_to_array(out)) == 20
        assert probe.spin_until(lambda: probe.diagnostics and "problems.bad_layout" in probe.diagnostics[-1], 3.0)
        status = probe.diagnostics[-1]
        for kind in ("short_data", "unknown_datatype", "missing_field", "non_finite_points", "bad_layout"):
            assert status[f"problems.{kind}"] == "1", status
        assert int(status["frames_dropped"]) == 4 + int(status.get("problems.too_many_points", 0))
        assert status["frames_empty"] == "2"  # one is the primer
    log = ingest.output()
    assert log.count("short_data:") == 1 and "Traceback" not in log


def test_uart_replay_of_a_damaged_stream(tmp_path, probe):
    stream = make_demo_stream(seconds=5.0, rate=40.0, seed=3)
    path = tmp_path / "stream.bin"
    path.write_bytes(stream.data)
    with start_ingest(tmp_path, "source:=uart", f"uart.replay_file:={path}", "uart.replay_rate:=40.0",
                      "uart.replay_wait_subscribers:=1") as ingest:
        expected = len(stream.truth)
        assert probe.spin_until(lambda: len(probe.clouds) >= expected, 20.0), (len(probe.clouds), ingest.output())
        centres = np.array([np.mean([pointcloud2_to_array(c)[a] for a in "xy"], axis=1) for c in probe.clouds])
        assert np.nanmean(np.linalg.norm(centres - stream.truth, axis=1)) < 0.1
        damaged = str(len(stream.damaged))
        assert probe.spin_until(lambda: probe.diagnostics
                                and probe.diagnostics[-1].get("problems.frames_truncated") == damaged, 3.0)
        assert all(c.header.frame_id == "radar_link" for c in probe.clouds)


@pytest.mark.parametrize("param, message", [
    ("preprocess.range_max:=-1.0", "range_min must be >= 0 and below range_max"),
    ("uart.device:=xwr99xx", "'uart.device' must be one of auto, xwr14xx"),
    ("max_points:=many", "'max_points' must be an integer, got 'many'"),
    ("transform.rpy:=[0.0, 0.1]", "'transform.rpy' takes 3 numbers, got [0.0, 0.1]"),
])
def test_a_bad_parameter_is_one_clear_error(param, message):
    result = subprocess.run([console_script("radar_ingest"), "--ros-args", "--params-file", str(CONFIG),
                             "-p", param], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture
def in_process():
    """RadarIngestNode instances made in this process, in a context of their own."""
    from ros2_radar_pose.nodes.radar_ingest import RadarIngestNode

    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(**parameters):
        overrides = [rclpy.parameter.Parameter(name, value=value) for name, value in parameters.items()]
        nodes.append(RadarIngestNode(context=context, parameter_overrides=overrides))
        return nodes[-1]
    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_huge_clouds_are_dropped_or_processed_as_max_points_says(in_process):
    rng = np.random.default_rng(2)
    huge = np.zeros(100_000, dtype=TI_MMWAVE)
    huge[:28] = ti_mmwave_cloud(rng, (2.0, 0.0))
    huge[28:]["x"] = rng.uniform(6, 7, len(huge) - 28)   # far points: kept out by the ROI
    msg = array_to_pointcloud2(huge, Header(stamp=from_seconds(3.0)))
    strict = in_process()
    strict.on_cloud(msg)
    assert strict.diagnostics.problems["too_many_points"] == 1 and strict.stats.frames == 0
    sent = []
    roomy = in_process(max_points=200_000)
    roomy.publisher.publish = sent.append
    roomy.on_cloud(msg)
    assert len(pointcloud2_to_array(sent[0])) == 20 and roomy.stats.total("points_in") == 100_000


def test_config_file_lists_every_parameter_with_its_default(in_process):
    node = in_process()
    builtin = set(Node("bare", context=node.context)._parameters)   # use_sim_time and the like
    declared = {name: p.value for name, p in node._parameters.items() if name not in builtin}
    documented = flatten(yaml.safe_load(CONFIG.read_text())["radar_ingest"]["ros__parameters"])
    assert set(documented) == set(declared)
    for name, value in declared.items():
        assert documented[name] == value, name
