"""The test's own node in a private rclpy context, spun by hand until a condition holds."""
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class ProbeNode:
    """``node`` in its own context (so a test's shutdown never touches another's); subclasses add
    their publishers and subscriptions."""

    def __init__(self, name: str = "probe"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout: float) -> bool:
        """Spin until ``condition()`` holds or ``timeout`` seconds pass; its last value."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


class StageProbe(ProbeNode):
    """A pipeline stage's surroundings: publishes ``in_type`` on ``in_topic`` and collects what
    comes back on ``out_topic`` in ``received``; a reply is waited for ``reply_timeout`` s unless
    told otherwise."""

    def __init__(self, in_type, in_topic: str, out_type, out_topic: str, qos, reply_timeout: float = 5.0):
        super().__init__()
        self.reply_timeout = reply_timeout
        self.received: list = []
        self.publisher = self.node.create_publisher(in_type, in_topic, qos)
        self.subscription = self.node.create_subscription(out_type, out_topic, self.received.append, qos)

    def wait_matched(self, process, timeout: float) -> None:
        """Wait until the stage's process is up and matched both ways, seen from here."""
        matched = lambda: (self.publisher.get_subscription_count() > 0  # noqa: E731
                           and self.subscription.get_publisher_count() > 0)
        assert self.spin_until(lambda: matched() or not process.alive(), timeout) and process.alive(), \
            process.output()

    def send_and_receive(self, msg, timeout: float | None = None):
        """Publish ``msg``; the first message that comes back within ``timeout`` s, or None."""
        timeout = self.reply_timeout if timeout is None else timeout
        before = len(self.received)
        self.publisher.publish(msg)
        self.spin_until(lambda: len(self.received) > before, timeout)
        return self.received[before] if len(self.received) > before else None
