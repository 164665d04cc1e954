"""bag_player: republishes a bag's topics at the recorded rate (times ``rate``), like ``ros2 bag play``.

Messages go out as the CDR bytes recorded, never deserialised, each topic with the QoS its
publishers offered when it was recorded (/tf_static transient-local, so it is latched again).
Optional /clock from bag time (``clock_rate``), ``loop``, a topic selection, and a wait for
subscribers before starting (DDS discovery takes a moment). Without ``loop`` the node exits
when the bag is played. The timing lives in data/playback.py, the reading in data/bags.py.

A topic whose message type this ROS installation lacks is skipped with one warning. A bag that
cannot be read is one fatal line and exit status 2; a bag that turns out damaged while playing
is played up to the damage, then one error line and exit status 1.
"""
from __future__ import annotations

import importlib
import re
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from ros2_radar_pose import topics as names
from ros2_radar_pose.data.bags import BagError, BagReader, RawMessage
from ros2_radar_pose.data.playback import Playback
from ros2_radar_pose.ros.dds import use_discovery_profile
from ros2_radar_pose.ros.diagnostics import ERROR, OK, WARN, NodeDiagnostics
from ros2_radar_pose.ros.params import ParameterError, declare
from ros2_radar_pose.ros.run import raise_unless_shut_down, wait_for_subscribers
from ros2_radar_pose.ros.time import from_seconds

# A latched topic keeps this many messages at most for late subscribers.
MAX_LATCHED = 1000


class BagPlayerNode(Node):
    def __init__(self, **node_options):
        super().__init__("bag_player", **node_options)
        param = lambda name, default, description="": declare(self, name, default, description)  # noqa: E731
        bag = param("bag", "", "bag to play: a rosbag2 directory, an .mcap or a .db3 file")
        rate = param("rate", 1.0, "playback speed: 2.0 plays twice as fast as recorded")
        loop = param("loop", False, "play the bag again and again")
        selection = param("topics", "", "topics to play, separated by spaces or commas (empty: all)")
        clock_rate = param("clock_rate", 0.0, "publish /clock from bag time at this rate, Hz (0: no /clock)")
        self.wait_subscribers = param("wait_subscribers", 0, "start once the played topics have this many "
                                      "subscriptions in all")
        period = param("diagnostics_period", 1.0, "s between diagnostics")
        if not bag:
            raise ParameterError("parameter 'bag' is required: the bag directory, .mcap or .db3 file to play")
        if not rate > 0 or clock_rate < 0 or self.wait_subscribers < 0:
            raise ParameterError("parameters 'rate' must be > 0, 'clock_rate' and 'wait_subscribers' >= 0")

        self.reader = BagReader(bag)
        for problem in self.reader.problems:
            self.get_logger().warning(f"bag {bag}: {problem}")
        wanted = [topic for topic in re.split(r"[\s,]+", selection) if topic] or sorted(self.reader.topics)
        self.reader.raw(wanted)  # a topic the bag lacks: BagError naming what it has
        self.publishers_by_topic = {}
        self.skipped: list[str] = []
        for topic in wanted:
            info = self.reader.topics[topic]
            msg_class = message_class(info.msgtype)
            if msg_class is None:
                self.skipped.append(f"{topic} ({info.msgtype})")
                continue
            qos = recorded_qos(info.qos, info.count)
            self.publishers_by_topic[topic] = self.create_publisher(msg_class, topic, qos)
        if self.skipped:
            self.get_logger().warning(f"skipping {', '.join(self.skipped)}: this ROS installation has no such "
                                      "message type; the other topics play")
        if not self.publishers_by_topic:
            raise BagError(bag, "none of the topics to play has a message type this ROS installation knows")
        self.playback = Playback(self.reader, self.publishers_by_topic, rate, loop)

        self.finished = threading.Event()
        self.exit_code = 0
        self._stop = threading.Event()
        self._state = "waiting for subscribers" if self.wait_subscribers else "playing"
        self._window = (time.monotonic(), 0)  # (time, messages published) when diagnostics last ran
        self.clock_publisher = None
        if clock_rate > 0:
            self.clock_publisher = self.create_publisher(Clock, names.CLOCK, QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE))  # reliable: any subscriber matches
            self.create_timer(1.0 / clock_rate, self._publish_clock)
        self.diagnostics = NodeDiagnostics(self, "bag player", self._status, hardware_id=str(bag), period=period)
        self._thread = threading.Thread(target=self._play, name="playback", daemon=True)
        self._thread.start()
        self.get_logger().info(f"playing {bag}: {len(self.publishers_by_topic)} topic(s), "
                               f"{self.playback.total} message(s), rate {rate}" + (", looping" if loop else ""))

    def _play(self) -> None:
        try:
            if not wait_for_subscribers(self._subscription_count, self.wait_subscribers, self._stop):
                return
            self._state = "playing"
            if self.playback.run(self._publish, self._stop.wait):
                self._state = "finished"
                self.get_logger().info(f"finished: {self.playback.published} message(s) published")
        except BagError as error:
            self._state = "stopped by damage"
            self.get_logger().error(f"{error} ({self.playback.published} message(s) published)")
            self.exit_code = 1
        except Exception as error:  # a bug must end the node with a message, not hang it
            if self._stop.is_set() or not self.context.ok():
                # Ctrl-C shut the context down while a message was on its way out: a stop, not a failure
                self._state = "stopped"
                return
            self._state = "failed"
            self.get_logger().fatal(f"playback failed: {type(error).__name__}: {error}")
            self.exit_code = 1
        finally:
            self.finished.set()

    def _publish(self, message: RawMessage) -> None:
        self.publishers_by_topic[message.topic].publish(message.data)

    def _publish_clock(self) -> None:
        bag_time = self.playback.bag_time_ns()
        if bag_time is not None and self._state == "playing":
            self.clock_publisher.publish(Clock(clock=from_seconds(bag_time * 1e-9)))

    def _subscription_count(self) -> int:
        return sum(publisher.get_subscription_count() for publisher in self.publishers_by_topic.values())

    def _status(self) -> tuple[bytes, str, dict]:
        playback = self.playback
        now, published = time.monotonic(), playback.published
        rate = (published - self._window[1]) / max(now - self._window[0], 1e-9)
        self._window = (now, published)
        last = playback.last_log_time_ns
        values = {"messages_published": playback.published, "messages_in_bag": playback.total,
                  "passes": playback.passes, "rate_hz": rate, "topics": len(self.publishers_by_topic),
                  "topics_skipped": len(self.skipped),
                  "bag_time": "" if last is None else f"{last // 1_000_000_000}.{last % 1_000_000_000:09d}"}
        if self._state == "waiting for subscribers":
            return WARN, (f"waiting for {self.wait_subscribers} subscription(s), "
                          f"{self._subscription_count()} so far"), values
        if self._state in ("stopped by damage", "failed"):
            return ERROR, self._state, values
        level = WARN if self.skipped else OK
        return level, f"{self._state}: {playback.published} message(s), {rate:.1f} Hz", values

    def destroy_node(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.reader.close()
        super().destroy_node()


def message_class(msgtype: str):
    """The rclpy class of a message type ("pkg/msg/Name"), or None when it cannot be imported."""
    package, _, name = msgtype.rpartition("/")
    module = package.replace("/", ".") if "/" in package else f"{package}.msg"
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def recorded_qos(offers, count: int) -> QoSProfile:
    """The QoS to publish a recorded topic with: what its publishers offered.

    Reliable unless every publisher was best effort; transient-local only when every publisher
    was, then deep enough to latch every recorded message again (as many publishers as there
    were latched messages, at most MAX_LATCHED); no offers recorded: reliable, volatile, depth 10.
    """
    reliability = (ReliabilityPolicy.BEST_EFFORT if offers and all(o.reliability.name == "BEST_EFFORT" for o in offers)
                   else ReliabilityPolicy.RELIABLE)
    latched = bool(offers) and all(o.durability.name == "TRANSIENT_LOCAL" for o in offers)
    depth = max([o.depth for o in offers if o.history.name == "KEEP_LAST"] + [1 if offers else 10])
    if latched:
        depth = max(depth, min(count, MAX_LATCHED))
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def main(args=None) -> None:
    use_discovery_profile()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = BagPlayerNode()
        while rclpy.ok() and not node.finished.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
        node.diagnostics.publish()  # the final figures
        code = node.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError as error:
        raise_unless_shut_down(error)
    except (ParameterError, BagError) as error:  # one clear line, no traceback
        rclpy.logging.get_logger("bag_player").fatal(str(error))
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
