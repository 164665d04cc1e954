"""The README's main job (radar-pose demo), shortened: it must succeed and say what it saw."""
import re
import subprocess

import pytest
from conftest import console_script

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


def test_main_job_plays_a_synthetic_bag_through_the_nodes(tmp_path):
    command = [console_script("radar-pose"), "demo", "--seconds", "6", "--play-rate", "2", "--workdir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1. simulated synthetic_bag" in result.stdout
    assert re.search(r"synchronised\s+120 radar frames", result.stdout)
    assert re.search(r"clouds received\s+120 / 120", result.stdout) and "OK:" in result.stdout
    assert (tmp_path / "synthetic_bag" / "metadata.yaml").exists()
