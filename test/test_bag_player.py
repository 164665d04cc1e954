"""bag_player: the playback timing (a fake clock, no ROS) and the node as its own process over DDS."""
import subprocess
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from conftest import console_script, start_node
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from ros_probe import ProbeNode
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage

from ros2_radar_pose import topics
from ros2_radar_pose.data.bags import NS, BagError, BagReader, BagWriter, Transform
from ros2_radar_pose.data.playback import Playback
from ros2_radar_pose.nodes.bag_player import message_class, recorded_qos

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "radar_pose.yaml"
STAMP0 = 1_700_000_000 * NS
PERIOD = 50_000_000
FRAMES = 30
PLAYED = (topics.RADAR_POINTS, topics.TEACHER_SKELETON, topics.TF_STATIC)
VENDOR = "/vendor/status"


def write_bag(path: Path, frames: int = FRAMES, storage: str = "mcap") -> Path:
    """Radar clouds and teacher skeletons at 20 Hz, static TF, and a topic of a type ROS lacks."""
    rng = np.random.default_rng(0)
    with BagWriter(path, storage) as bag:
        bag.write_static_transforms(STAMP0, [Transform("world", "radar_link", [1, 0, 1], [0, 0, 0, 1])])
        for index in range(frames):
            stamp = STAMP0 + index * PERIOD
            bag.write_cloud(topics.RADAR_POINTS, stamp, "radar_link", rng.normal(size=(20, 5)).astype(np.float32))
            bag.write_skeleton(topics.TEACHER_SKELETON, stamp + 1000, "radar_link", rng.normal(size=(24, 3)))
            if index % 10 == 0:
                bag.write_raw(VENDOR, "vendor_msgs/msg/Status", stamp + 2000, b"\x00\x01\x00\x00\x07",
                              msgdef="uint8 level\n")
    return path


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return write_bag(tmp_path_factory.mktemp("player") / "session")


# -- timing, without ROS ---------------------------------------------------------------------------------

class FakeClock:
    """time.monotonic() stand-in whose waits pass instantly; stops after ``stop_after`` messages."""

    def __init__(self, stop_after: int | None = None):
        self.now, self.stop_after, self.published = 1000.0, stop_after, []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return self.stop_after is not None and len(self.published) >= self.stop_after


@pytest.mark.parametrize("rate", [1.0, 2.0, 0.5])
def test_messages_are_due_at_their_log_time_over_the_rate(bag, rate):
    clock = FakeClock()
    reader = BagReader(bag)
    playback = Playback(reader, PLAYED, rate=rate, clock=clock)
    bag_times = []

    def publish(message):
        clock.published.append((clock.now, message))
        bag_times.append(playback.bag_time_ns())
    assert playback.run(publish, clock.wait) is True
    expected = list(reader.raw(PLAYED))
    assert [m for _, m in clock.published] == expected
    first = expected[0].log_time_ns
    for (wall, message), bag_time in zip(clock.published, bag_times):
        assert wall == pytest.approx(1000.0 + (message.log_time_ns - first) / NS / rate, abs=1e-9)
        assert bag_time == pytest.approx(message.log_time_ns, abs=10)
    assert playback.published == len(expected) == playback.total and playback.passes == 1


def test_a_loop_starts_again_one_interval_after_the_last_message(bag):
    clock = FakeClock(stop_after=int(2.5 * (2 * FRAMES + 1)))
    playback = Playback(BagReader(bag), PLAYED, rate=2.0, loop=True, clock=clock)
    assert playback.run(lambda m: clock.published.append((clock.now, m)), clock.wait) is False
    per_pass = 2 * FRAMES + 1
    assert playback.passes == 2 and len(clock.published) == int(2.5 * per_pass)
    first, second = clock.published[:per_pass], clock.published[per_pass:2 * per_pass]
    assert [m for _, m in first] == [m for _, m in second]
    span = (first[-1][1].log_time_ns - first[0][1].log_time_ns) / NS
    interval = span / (per_pass - 1)
    assert second[0][0] - first[0][0] == pytest.approx((span + interval) / 2.0)


def test_playback_refuses_a_bad_rate_and_unknown_topics(bag):
    with pytest.raises(ValueError, match="rate must be > 0"):
        Playback(BagReader(bag), rate=0.0)
    with pytest.raises(BagError, match="has no topic /nope"):
        Playback(BagReader(bag), ["/nope"])


def test_a_damaged_bag_plays_to_the_damage_then_raises(tmp_path, bag):
    blob = next(bag.glob("*.mcap")).read_bytes()
    damaged = tmp_path / "cut.mcap"
    damaged.write_bytes(blob[:len(blob) * 2 // 3])
    clock = FakeClock()
    playback = Playback(BagReader(damaged), PLAYED, clock=clock)
    with pytest.raises(BagError, match="the file ends at byte") as error:
        playback.run(lambda m: clock.published.append((clock.now, m)), clock.wait)
    assert 0 < len(clock.published) == error.value.messages_read == playback.published


def offer(reliability, durability, depth=5):
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth, reliability, durability, zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def test_recorded_qos_follows_the_publishers_offers():
    reliable, best_effort = QosReliability.RELIABLE, QosReliability.BEST_EFFORT
    volatile, latched = QosDurability.VOLATILE, QosDurability.TRANSIENT_LOCAL
    static = recorded_qos((offer(reliable, latched, 1),), count=3)
    assert (static.reliability, static.durability, static.depth) == (
        ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL, 3)  # every latched message again
    sensor = recorded_qos((offer(best_effort, volatile), offer(best_effort, volatile, 10)), count=500)
    assert (sensor.reliability, sensor.durability, sensor.depth) == (
        ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE, 10)
    mixed = recorded_qos((offer(best_effort, latched), offer(reliable, volatile)), count=5)
    assert (mixed.reliability, mixed.durability) == (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)
    unknown = recorded_qos((), count=5)
    assert (unknown.reliability, unknown.durability, unknown.depth) == (
        ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, 10)


def test_message_classes_are_imported_by_type_name():
    assert message_class("sensor_msgs/msg/PointCloud2") is PointCloud2
    assert message_class("tf2_msgs/msg/TFMessage") is TFMessage
    assert message_class("vendor_msgs/msg/Status") is None
    assert message_class("sensor_msgs/msg/NoSuchThing") is None


# -- the node as a process ------------------------------------------------------------------------------

class Probe(ProbeNode):
    """The test's side of the graph: raw subscriptions to the played topics and /clock."""

    def __init__(self):
        super().__init__()
        self.received: dict[str, list[tuple[float, bytes]]] = {}
        for topic, msg_type in ((topics.RADAR_POINTS, PointCloud2), (topics.TEACHER_SKELETON, PoseArray),
                                (topics.TF_STATIC, TFMessage), (topics.CLOCK, Clock)):
            latched = topic == topics.TF_STATIC
            qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
            self.received[topic] = []
            self.node.create_subscription(msg_type, topic, lambda data, t=topic: self.received[t].append(
                (time.monotonic(), data)), qos, raw=True)

    def data(self, topic: str) -> list[bytes]:
        return [data for _, data in self.received[topic]]


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


start_player = partial(start_node, "bag_player", params_file=CONFIG)


def play(tmp_path, probe: Probe, *params: str, subscriptions: int = 3, timeout: float = 30.0) -> tuple[int, str]:
    """Run the player to its end while the probe listens; (exit code, log)."""
    with start_player(tmp_path, f"wait_subscribers:={subscriptions}", *params) as player:
        assert probe.spin_until(lambda: not player.alive(), timeout), player.output()
        probe.spin_until(lambda: False, 0.3)  # what is still on its way
    return player.process.returncode, player.output()


def on_the_wire(data: bytes) -> bytes:
    """What a subscriber receives of recorded bytes: DDS pads the payload to a multiple of 4."""
    return data + b"\0" * (-len(data) % 4)


def span(probe: Probe, topic: str) -> float:
    times = [t for t, _ in probe.received[topic]]
    return times[-1] - times[0]


@pytest.mark.ros
@pytest.mark.slow
def test_the_player_republishes_the_recorded_bytes_with_clock_and_exits(tmp_path, bag, probe):
    code, log = play(tmp_path, probe, f"bag:={bag}", "clock_rate:=50.0")
    assert code == 0, log
    reader = BagReader(bag)
    for topic in PLAYED:
        assert probe.data(topic) == [on_the_wire(m.data) for m in reader.raw([topic])], (topic, log)
    assert log.count("skipping /vendor/status (vendor_msgs/msg/Status)") == 1 and "Traceback" not in log
    clock = [deserialize_message(data, Clock).clock for data in probe.data(topics.CLOCK)]
    clock = [c.sec * NS + c.nanosec for c in clock]
    assert len(clock) > 20 and clock == sorted(clock)
    assert reader.start_ns <= clock[0] and clock[-1] <= reader.end_ns + 0.2 * NS
    recorded = (FRAMES - 1) * PERIOD / NS
    assert 0.6 * recorded < span(probe, topics.RADAR_POINTS) < 1.8 * recorded


@pytest.mark.ros
@pytest.mark.slow
def test_rate_two_plays_in_about_half_the_time(tmp_path, bag, probe):
    spans = []
    for rate in (1.0, 2.0):
        code, log = play(tmp_path, probe, f"bag:={bag}", f"rate:={rate}", f"topics:={topics.RADAR_POINTS}",
                         subscriptions=1)
        assert code == 0 and len(probe.received[topics.RADAR_POINTS]) == FRAMES, log
        spans.append(span(probe, topics.RADAR_POINTS))
        probe.received[topics.RADAR_POINTS].clear()
        assert probe.received[topics.TEACHER_SKELETON] == []  # not selected
    assert 0.3 < spans[1] / spans[0] < 0.75, spans


@pytest.mark.ros
@pytest.mark.slow
def test_a_looping_player_repeats_the_bag_until_stopped(tmp_path, bag, probe):
    expected = [on_the_wire(m.data) for m in BagReader(bag).raw([topics.RADAR_POINTS])]
    with start_player(tmp_path, f"bag:={bag}", "loop:=true", "rate:=4.0", "wait_subscribers:=3") as player:
        assert probe.spin_until(lambda: len(probe.received[topics.RADAR_POINTS]) >= 2.5 * FRAMES, 30.0), \
            player.output()
        assert player.alive()
    assert player.process.returncode == 0, player.output()
    got = probe.data(topics.RADAR_POINTS)
    assert got[:FRAMES] == expected and got[FRAMES:2 * FRAMES] == expected


@pytest.mark.ros
@pytest.mark.slow
def test_a_damaged_bag_is_played_to_the_damage_then_exits_with_an_error(tmp_path, bag, probe):
    blob = next(bag.glob("*.mcap")).read_bytes()
    damaged = tmp_path / "cut.mcap"
    damaged.write_bytes(blob[:len(blob) // 2])
    expected = []
    with pytest.raises(BagError):
        for message in BagReader(damaged).raw([topics.RADAR_POINTS]):
            expected.append(on_the_wire(message.data))
    code, log = play(tmp_path, probe, f"bag:={damaged}", "rate:=5.0")
    assert code == 1, log
    assert probe.data(topics.RADAR_POINTS) == expected
    assert "the file ends at byte" in log and "Traceback" not in log


@pytest.mark.ros
@pytest.mark.parametrize("params, message", [
    (["bag:=/no/such/bag"], "bag /no/such/bag: no such bag"),
    ([], "parameter 'bag' is required"),
    (["bag:=BAG", "rate:=0.0"], "'rate' must be > 0"),
    (["bag:=BAG", "topics:=/nope"], "the bag has no topic /nope; it has /radar/points"),
    (["bag:=JUNK"], "not an MCAP file"),
])
def test_what_cannot_be_played_is_one_fatal_line(tmp_path, bag, params, message):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all")
    params = [p.replace("BAG", str(bag)).replace("JUNK", str(junk)) for p in params]
    command = [console_script("bag_player"), "--ros-args", "--params-file", str(CONFIG)]
    for param in params:
        command += ["-p", param]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in output and "FATAL" in output and "Traceback" not in output


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.ros
def test_config_file_lists_every_parameter_with_its_default(bag):
    from ros2_radar_pose.nodes.bag_player import BagPlayerNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = BagPlayerNode(context=context, parameter_overrides=[rclpy.parameter.Parameter("bag", value=str(bag))])
        builtin = set(Node("bare", context=context)._parameters)  # use_sim_time and the like
        declared = {name: p.value for name, p in node._parameters.items() if name not in builtin}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    documented = flatten(yaml.safe_load(CONFIG.read_text())["bag_player"]["ros__parameters"])
    assert set(documented) == set(declared)
    for name, value in declared.items():
        if name != "bag":  # the one without a usable default
            assert documented[name] == value, name
    assert documented["bag"] == "" and declared["bag"] == str(bag)
