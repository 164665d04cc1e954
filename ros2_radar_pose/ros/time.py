"""builtin_interfaces/Time <-> float seconds (or integer nanoseconds)."""
from builtin_interfaces.msg import Time


def to_seconds(stamp: Time) -> float:
    """Seconds since the epoch of the stamp's clock."""
    return stamp.sec + stamp.nanosec * 1e-9


def to_nanoseconds(stamp: Time) -> int:
    """Integer nanoseconds since the epoch of the stamp's clock (exact, as bags store time)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def from_seconds(seconds: float) -> Time:
    """A Time message for ``seconds`` (non-negative), rounded to the nanosecond."""
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)
