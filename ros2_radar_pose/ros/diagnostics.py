"""Diagnostics for every node: problems counted by kind, logged once per kind, published on
/diagnostics with the node's own figures."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from ros2_radar_pose.ros.qos import DIAGNOSTICS

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


def format_value(value) -> str:
    """A diagnostics value as text: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class NodeDiagnostics:
    """Publishes one DiagnosticStatus per ``period`` seconds.

    ``status`` returns (level, message, values) for the node's own state; problems reported
    through ``problem`` raise the level to WARN for the period in which they happened, and
    their counts per kind are appended to the values. Thread-safe.
    """

    def __init__(self, node: Node, name: str, status: Callable[[], tuple[int, str, dict]],
                 hardware_id: str = "", period: float = 1.0):
        self._node = node
        self._name = f"{node.get_name()}: {name}"
        self._hardware_id = hardware_id
        self._status = status
        self._lock = threading.Lock()
        self.problems: Counter[str] = Counter()
        self._new_problems = 0
        self._last_problem = ""
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS)
        self._timer = node.create_timer(period, self.publish)

    def problem(self, kind: str, message: str) -> None:
        """Count a problem of ``kind``; the first of each kind is logged as a warning."""
        with self._lock:
            first = self.problems[kind] == 0
            self.problems[kind] += 1
            self._new_problems += 1
            self._last_problem = f"{kind}: {message}"
        if first:
            self._node.get_logger().warning(
                f"{kind}: {message} (logged once; /diagnostics counts every {kind})")

    def publish(self) -> None:
        """Publish the current status now."""
        level, message, values = self._status()
        with self._lock:
            if self._new_problems:
                level = max(level, WARN)
                message = f"{message}; {self._new_problems} problem(s), last {self._last_problem}"
            self._new_problems = 0
            values = dict(values, **{f"problems.{kind}": n for kind, n in sorted(self.problems.items())})
        status = DiagnosticStatus(level=level, name=self._name, message=message,
                                  hardware_id=self._hardware_id,
                                  values=[KeyValue(key=k, value=format_value(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)
