"""The synthetic-world benchmarks run and report what they claim (their figures come from full runs)."""
import pytest

from bench import sim_vs_real, simulate
from ros2_radar_pose.data.mars import available

pytestmark = pytest.mark.slow


def mars_available() -> bool:
    try:
        return bool(available())
    except FileNotFoundError:
        return False


def test_simulate_bench_reports_real_time_factor(capsys):
    result = simulate.main(["--seconds", "5"])
    assert result["simulated_seconds"] == pytest.approx(5.0, abs=0.1)
    assert result["realtime_factor"] > 1
    assert result["batching_speedup"] > 1                  # one frame per call costs more than a batch
    assert 3 <= result["points_per_frame"]["median"] <= 64
    assert capsys.readouterr().out.count("\n") == 1       # one JSON line


@pytest.mark.skipif(not mars_available(), reason="MARS data not found (../shared/data/mars or $RADAR_POSE_MARS)")
def test_sim_vs_real_bench_compares_against_a_real_yardstick():
    result = sim_vs_real.main(["--frames", "300"])
    assert result["frames"] == 300
    assert 0 < result["score_real_vs_real"] < result["score_sim_vs_real"] < 1.0
    assert abs(result["extrinsic_offset_m"][1]) < 0.5
    assert set(result["per_statistic_w1_scaled"]) >= {"points_per_frame", "bone_distance", "velocity", "intensity"}
