"""Replaying a bag in time: each message is due when its recorded log time comes round again,
sped up by a rate factor, the way ``ros2 bag play --rate`` paces a bag.

ROS-free: the caller hands in the function that publishes a message and the one that waits, so
the bag_player node and tests (with a fake clock) share the same loop.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ros2_radar_pose.data.bags import NS, BagReader, RawMessage


class Playback:
    """Plays ``topics`` of a bag (all when None) at ``rate`` times the recorded speed.

    With ``loop`` the bag starts again one mean message interval after its last message, so a
    periodic recording loops at its own period. ``bag_time_ns()`` tells the bag time that
    corresponds to now (for /clock). Figures for diagnostics: ``published``, ``passes``,
    ``last_log_time_ns``.
    """

    def __init__(self, reader: BagReader, topics: Iterable[str] | None = None, rate: float = 1.0,
                 loop: bool = False, clock: Callable[[], float] = time.monotonic):
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.reader, self.rate, self.loop, self.clock = reader, float(rate), loop, clock
        self.topics = sorted(reader.topics) if topics is None else sorted(set(topics))
        reader.raw(self.topics)  # checks the topics now rather than when playing starts
        counts = [reader.topics[topic].count for topic in self.topics]
        self.total = sum(counts)
        self.published = 0
        self.passes = 0
        self.last_log_time_ns: int | None = None
        self._origin: tuple[float, int] | None = None  # (wall time, log time) of the pass's start
        self._lock = threading.Lock()

    def bag_time_ns(self) -> int | None:
        """The bag time now: the pass's first log time plus the elapsed time times the rate."""
        with self._lock:
            origin = self._origin
        if origin is None:
            return None
        wall, log_time = origin
        return log_time + max(0, round((self.clock() - wall) * self.rate * NS))

    def run(self, publish: Callable[[RawMessage], None], wait: Callable[[float], bool] | None = None) -> bool:
        """Publish every message when it is due; ``wait(seconds)`` sleeps and returns True when
        playing must stop (default: ``time.sleep``, never stopping). Returns False when stopped,
        True when the bag was played to its end. A damaged bag raises BagError after its good
        messages were published."""
        wait = wait or (lambda seconds: time.sleep(seconds) or False)
        start = self.clock()
        while True:
            first = last = None
            count = 0
            for message in self.reader.raw(self.topics):
                if first is None:
                    first = message.log_time_ns
                    with self._lock:
                        self._origin = (start, first)
                last = max(last or message.log_time_ns, message.log_time_ns)
                due = start + (message.log_time_ns - first) / NS / self.rate
                delay = due - self.clock()
                if wait(delay if delay > 0 else 0.0):
                    return False
                publish(message)
                count += 1
                self.published += 1
                self.last_log_time_ns = message.log_time_ns
            self.passes += 1
            if not self.loop or first is None:
                return True
            interval = (last - first) / (count - 1) if count > 1 else NS
            start += (last - first + interval) / NS / self.rate
