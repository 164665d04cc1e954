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
