"""FrameStats, the input figures every stage's diagnostics report: levels, rates, per-frame totals."""
import time

import pytest

from ros2_radar_pose.ros.diagnostics import ERROR, OK, WARN, FrameStats


def test_waiting_then_ok_then_stale():
    stats = FrameStats(stale_after=0.05)
    report = stats.report()
    assert report.level == WARN and report.message("x") == "waiting for input"
    stats.handled(seconds=0.002, points=10)
    stats.handled(seconds=0.004, points=30)
    stats.dropped()
    report = stats.report()
    assert report.level == OK and report.message("2 ms").endswith("Hz, 2 ms")
    assert report.values["frames"] == 2 and report.values["frames_dropped"] == 1 and stats.frames == 2
    assert report.per_frame("seconds") == pytest.approx(0.003) and report.per_frame("points") == 20
    assert report.totals["missing"] == 0 and report.rate > 0 and stats.total("points") == 40
    time.sleep(0.06)
    report = stats.report()
    assert report.level == ERROR and report.message("x").startswith("no input for")
    assert report.rate == 0                      # nothing since the previous report
