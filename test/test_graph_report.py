"""The main job's report: known answers for accuracy, plausibility and latency, and the files."""
import json

import numpy as np
import pytest
import torch

from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.graph_report import GraphRun, format_markdown, score_run, write_report
from ros2_radar_pose.physics.humanoid import BodyShape
from ros2_radar_pose.physics.metrics import sole_depth
from ros2_radar_pose.physics.tracker import FloorFrame

FLOOR = FloorFrame((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))       # the radar 1 m above the floor, level


CLEARANCE = BodyShape.of(AnthropometricBody()).clearance


def standing(frames: int) -> np.ndarray:
    """A person standing 2 m in front of the radar, soles on the floor: (T, 24, 3) radar frame."""
    body = AnthropometricBody()
    rest = body.rest_joints(torch.zeros(1, body.num_betas))[0, :24].double().numpy()   # x left, y up, z forward
    joints = np.stack([-rest[:, 2] + 2.0, rest[:, 0], rest[:, 1]], axis=1)[None]    # facing the radar
    in_floor = FLOOR.to_floor(joints, np.eye(3))[0]
    joints[..., 2] -= sole_depth(in_floor, CLEARANCE).min()
    return np.repeat(joints, frames, axis=0)


@pytest.fixture
def run():
    frames = 40
    truth = standing(frames)
    student = truth + np.array([0.1, 0.0, 0.0])           # 10 cm too far, everywhere
    student[5] = np.nan                                   # a frame the student never answered
    refined = truth.copy()
    refined[:, :, 2] -= 0.02                              # 2 cm into the floor
    t = np.arange(frames) * 0.05
    arrivals = {"truth": t, "cloud": t + 0.001, "student": t + 0.011, "refined": t + 0.016, "tf": t + 0.017}
    arrivals["tf"][7] = np.nan                            # a TF that never came
    return GraphRun(t + 100.0, truth, {"student": student, "refined": refined}, arrivals)


def test_scores_have_known_answers(run):
    clearance = CLEARANCE
    scores = score_run(run, FLOOR, clearance)
    student, refined = scores["accuracy"]["student"], scores["accuracy"]["refined"]
    assert student["frames"] == 39 and refined["frames"] == 40
    assert student["mpjpe_cm"] == pytest.approx(10.0) and student["root_cm"] == pytest.approx(10.0)
    assert student["pa_mpjpe_cm"] == pytest.approx(0.0, abs=1e-6)          # a shift is all Procrustes removes
    assert refined["mpjpe_cm"] == pytest.approx(2.0) and refined["per_joint_cm"]["left_wrist"] == pytest.approx(2.0)
    plausible = scores["plausibility"]
    assert plausible["truth"]["penetration_max_mm"] == pytest.approx(0.0)
    assert plausible["student"]["skating_mm"] == pytest.approx(0.0)         # still, so no sliding and no jitter
    assert plausible["student"]["jitter_mm"] == pytest.approx(0.0)
    assert plausible["refined"]["penetration_max_mm"] == pytest.approx(20.0)   # the 2 cm it was moved down
    assert plausible["refined"]["penetration_share"] == pytest.approx(1.0)
    latency = scores["latency"]
    assert latency["ingest"]["p50_ms"] == pytest.approx(1.0, abs=0.01)
    assert latency["student"]["p50_ms"] == pytest.approx(10.0, abs=0.01) and latency["student"]["frames"] == 40
    assert latency["physics"]["p99_ms"] == pytest.approx(5.0, abs=0.01)
    assert latency["end_to_end"]["frames"] == 39 and latency["end_to_end"]["max_ms"] == pytest.approx(17.0, abs=0.01)
    table = format_markdown(scores)
    assert "| student | 39 | 10.0 | 0.0 | 10.0 |" in table and "| end to end | 39 | 17.0 |" in table


def test_report_files_are_written(run, tmp_path):
    clearance = CLEARANCE
    scores, png = write_report(tmp_path / "report", run, FLOOR, clearance, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert json.loads((tmp_path / "report" / "report.json").read_text()) == json.loads(json.dumps(scores))
    assert "![report](report.png)" in (tmp_path / "report" / "report.md").read_text()


def test_a_stage_that_never_answered_is_reported_not_fatal(run, tmp_path):
    run.estimates["refined"][:] = np.nan
    run.arrivals["refined"][:] = np.nan
    scores, _ = write_report(tmp_path, run, FLOOR, CLEARANCE)
    assert scores["accuracy"]["refined"] == {"frames": 0} and scores["plausibility"] == {}
    assert scores["latency"]["physics"] == {"frames": 0}
    assert "| refined | 0 | - | - | - |" in format_markdown(scores)
