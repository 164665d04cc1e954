"""The README's main job (radar-pose demo), shortened: it must succeed, say what it saw, and leave its
report and recording."""
import json
import re
import subprocess

import pytest
from conftest import console_script

from ros2_radar_pose.data.bags import BagReader

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_runs_the_ingest_node_on_the_built_in_stream(tmp_path):
    command = [console_script("radar-pose"), "demo", "--source", "uart", "--seconds", "5", "--rate", "40",
               "--workdir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # 200 packets, of which 8 were cut short or lied about their length.
    assert "intact packets published    192 / 192" in result.stdout
    assert "damaged packets dropped     8 (truncated 8, invalid 0); 8 were damaged" in result.stdout
    assert (tmp_path / "ti_uart_stream.bin").stat().st_size > 100_000
    assert "reading " in (tmp_path / "radar_ingest.log").read_text()


def test_main_job_plays_a_synthetic_session_through_the_whole_graph(tmp_path):
    # at the README's real-time rate: at 2x this listener, recording every stage on a busy 2-core
    # machine, fell behind and lost messages the graph had delivered (TF for all 120 frames,
    # 111 refined skeletons heard)
    command = [console_script("radar-pose"), "demo", "--seconds", "6", "--workdir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1. simulated synthetic_bag" in result.stdout
    assert re.search(r"synchronised\s+120 radar frames", result.stdout)
    assert re.search(r"clouds from radar_ingest\s+120 / 120", result.stdout)
    refined = re.search(r"refined skeletons and TF\s+(\d+) / 120, TF for (\d+)", result.stdout)
    assert refined and int(refined[1]) >= 114 and int(refined[2]) >= 114, result.stdout
    assert "OK:" in result.stdout
    scores = json.loads((tmp_path / "report" / "report.json").read_text())
    # every skeleton that came matched its ground truth by stamp, and the shipped student is no stray
    assert scores["accuracy"]["refined"]["frames"] == int(refined[1])
    assert scores["accuracy"]["refined"]["mpjpe_cm"] < 40.0
    assert scores["latency"]["end_to_end"]["frames"] >= 114
    assert (tmp_path / "report" / "report.png").stat().st_size > 50_000
    with BagReader(tmp_path / "outputs_bag") as reader:
        assert reader.topics["/radar_pose/skeleton"].count == int(refined[1])
        assert {"/radar_pose/points", "/radar_pose/student/skeleton", "/tf"} <= set(reader.topics)
