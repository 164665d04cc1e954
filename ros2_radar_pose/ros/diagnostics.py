"""Diagnostics for every node: problems counted by kind, logged once per kind, published on
/diagnostics with the node's own figures."""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class FrameReport:
    """A snapshot of ``FrameStats``: ``level`` and ``values`` (rate_hz, frames, frames_dropped) for
    a node's status, ``totals`` of what the node added per frame, ``rate`` in Hz."""

    level: int
    values: dict
    totals: Counter
    rate: float
    silent: float | None

    def per_frame(self, key: str) -> float:
        return self.totals[key] / max(self.values["frames"], 1)

    def message(self, detail: str) -> str:
        """"waiting for input", "no input for N s", or the rate and ``detail``."""
        if self.silent is None:
            return "waiting for input"
        if self.level == ERROR:
            return f"no input for {self.silent:.1f} s"
        return f"{self.rate:.1f} Hz, {detail}"


class FrameStats:
    """What every stage reports of its input: frames handled and dropped, totals per frame (points,
    seconds, ...), the rate since the last report, and how long input has been silent (WARN before
    any, ERROR after ``stale_after`` s). Thread-safe."""

    def __init__(self, stale_after: float):
        self.stale_after = stale_after
        self._lock = threading.Lock()
        self._frames = self._dropped = 0
        self._totals: Counter[str] = Counter()
        self._last_input: float | None = None
        self._window_start, self._window_frames = time.monotonic(), 0

    @property
    def frames(self) -> int:
        """Frames handled so far."""
        with self._lock:
            return self._frames

    def total(self, key: str) -> float:
        """The total of ``key`` over the frames handled so far."""
        with self._lock:
            return self._totals[key]

    def handled(self, **amounts: float) -> None:
        """One frame handled; ``amounts`` are added to the totals of those names."""
        with self._lock:
            self._frames += 1
            self._window_frames += 1
            self._totals.update(amounts)
            self._last_input = time.monotonic()

    def dropped(self) -> None:
        with self._lock:
            self._dropped += 1
            self._last_input = time.monotonic()

    def report(self) -> FrameReport:
        """The figures now; the rate counts from the previous report."""
        now = time.monotonic()
        with self._lock:
            rate = self._window_frames / max(now - self._window_start, 1e-9)
            self._window_start, self._window_frames = now, 0
            values = {"rate_hz": rate, "frames": self._frames, "frames_dropped": self._dropped}
            totals = self._totals.copy()
            silent = None if self._last_input is None else now - self._last_input
        level = WARN if silent is None else ERROR if silent > self.stale_after else OK
        return FrameReport(level, values, totals, rate, silent)
