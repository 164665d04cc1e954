"""Time synchronisation of a bag's topics by header stamp: one record per radar frame with the
nearest skeleton of each other topic, the pairs a trainer learns from.

One streaming pass over the bag, O(n) in all: primary messages wait in a queue until every other
topic has moved past their stamp plus the tolerance (or has no messages left), then take the
nearest candidate from a window that only ever holds the messages near the current stamp. A
teacher that answers late therefore costs memory for its latency, never for the whole bag; a
topic that falls silent stops holding frames back once the bag's log time has moved
``max_latency_s`` past them.

Stamps of each topic are expected to increase, as a sensor publishes them.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ros2_radar_pose import topics as names
from ros2_radar_pose.data.bags import POINTCLOUD2, POSE_ARRAY, BagError, BagReader, CloudMessage, SkeletonMessage

Message = CloudMessage | SkeletonMessage
DEFAULT_OTHERS = (names.TEACHER_SKELETON, names.GROUND_TRUTH_SKELETON)
_INF = float("inf")


class SyncedRecord(NamedTuple):
    """A primary message (a radar frame) and, per skeleton topic, the skeleton nearest to its
    stamp within the tolerance (None when there is none)."""

    primary: Message
    skeletons: dict[str, SkeletonMessage | None]

    @property
    def stamp_ns(self) -> int:
        return self.primary.stamp_ns


def synchronized(reader: BagReader, primary: str = names.RADAR_POINTS, others: Sequence[str] | None = None,
                 tolerance_s: float = 0.05, max_latency_s: float = 10.0) -> Iterator[SyncedRecord]:
    """One SyncedRecord per message of ``primary``, in the bag's order.

    ``primary``: a PointCloud2 or PoseArray topic. ``others``: the PoseArray topics to pair with
    it; None takes whichever of TEACHER_SKELETON and GROUND_TRUTH_SKELETON the bag has. A match
    is the skeleton whose header stamp is nearest, within ``tolerance_s`` (inclusive; a tie goes
    to the earlier one). ``max_latency_s``: how much later (in log time) than a primary message
    its partner may have been recorded. Raises BagError at once for missing topics or wrong
    types, and at the end, after every record, when the bag is damaged (see data/bags.py).
    """
    if others is None:
        others = [topic for topic in DEFAULT_OTHERS if topic in reader.topics]
        if not others:
            raise BagError(reader.path, f"the bag has none of {', '.join(DEFAULT_OTHERS)} to pair "
                           f"{primary} with; it has {', '.join(sorted(reader.topics)) or 'no topics'}")
    others = list(dict.fromkeys(others))
    if primary in others:
        raise ValueError(f"{primary} is the primary topic and cannot be one of the others too")
    for topic, allowed in [(primary, (POINTCLOUD2, POSE_ARRAY)), *((other, (POSE_ARRAY,)) for other in others)]:
        msgtype = reader.topics[topic].msgtype if topic in reader.topics else None
        if msgtype is not None and msgtype not in allowed:
            role = "the primary topic" if topic == primary else "a topic to pair with it"
            raise BagError(reader.path, f"the topic carries {msgtype}; {role} carries {' or '.join(allowed)}", topic)
    if tolerance_s < 0 or max_latency_s < 0:
        raise ValueError("tolerance_s and max_latency_s must be >= 0")
    stream = reader.messages([primary, *others])  # checks topics and types now
    # Message counts tell when a topic has no more to come; a damaged bag's may be wrong.
    counts = {topic: None if reader.problems else reader.topics[topic].count for topic in [primary, *others]}
    return _pairs(stream, primary, others, counts, round(tolerance_s * 1e9), round(max_latency_s * 1e9))


def _pairs(stream, primary: str, others: list[str], counts: dict[str, int | None], tolerance: int,
           latency: int) -> Iterator[SyncedRecord]:
    pending: deque[tuple[Message, int]] = deque()       # primary messages and their log times
    windows: dict[str, deque[SkeletonMessage]] = {topic: deque() for topic in others}
    remaining = {topic: _INF if count is None else count for topic, count in counts.items()}
    # Every message of the topic still to come has a stamp >= frontier (inf: none to come).
    frontier = {topic: _INF if remaining[topic] <= 0 else -_INF for topic in others}
    watermark = -_INF  # future primaries have stamps >= this (the last one emitted)
    newest_log = -_INF

    def emit() -> SyncedRecord:
        nonlocal watermark
        message, _ = pending.popleft()
        stamp = watermark = message.stamp_ns
        matches = {}
        for topic, window in windows.items():
            while window and window[0].stamp_ns < stamp - tolerance:
                window.popleft()
            best = None
            for candidate in window:
                if candidate.stamp_ns > stamp + tolerance:
                    break
                if best is None or abs(candidate.stamp_ns - stamp) < abs(best.stamp_ns - stamp):
                    best = candidate
            matches[topic] = best
        return SyncedRecord(message, matches)

    def ready(message: Message, log_time: int) -> bool:
        limit = message.stamp_ns + tolerance
        return all(frontier[topic] > limit for topic in others) or newest_log - log_time > latency

    try:
        for topic, log_time, message in stream:
            newest_log = max(newest_log, log_time)
            if topic == primary:
                pending.append((message, log_time))
                remaining[primary] -= 1
            else:
                window = windows[topic]
                if message.stamp_ns >= watermark - tolerance:  # older ones can match no future primary
                    window.append(message)
                remaining[topic] -= 1
                frontier[topic] = _INF if remaining[topic] <= 0 else max(frontier[topic], message.stamp_ns)
            while pending and ready(*pending[0]):
                yield emit()
            if remaining[primary] <= 0 and not pending:
                return  # every primary message has its record; the rest of the bag cannot change one
    except BagError:
        while pending:  # the primaries read before the damage still get their records
            yield emit()
        raise
    while pending:
        yield emit()
