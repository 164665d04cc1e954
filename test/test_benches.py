"""The synthetic-world benchmarks run and report what they claim (their figures come from full runs)."""
import json

import numpy as np
import pytest

from bench import attention, load, mars, physics, sim_vs_real, simulate, student_latency, teacher
from ros2_radar_pose.data.mars import available, load_mars
from ros2_radar_pose.student.checkpoint import read_checkpoint

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


def test_attention_bench_measures_the_matrix_and_skips_what_it_cannot_afford(capsys):
    result = attention.main(["--windows", "2048", "4096", "--threads", "1", "--repeats", "1", "--budget", "0",
                             "--max-seconds", "1e-9"])
    row = result["windows"]["2048"]
    assert all(row[kind]["ms"] > 0 and row[kind]["peak_mib"] > 0 for kind in attention.KINDS)
    assert row["speedup"] == round(row["softmax"]["ms"] / row["performer"]["ms"], 2)
    assert row["memory_fraction"] == round(row["performer"]["peak_mib"] / row["softmax"]["peak_mib"], 4)
    # the measured peak holds the (heads, W, W) matrix softmax attention materialises, FAVOR+ does not
    assert row["attention_matrix_mib"] == 4 * 2048 ** 2 * 4 / 2 ** 20
    assert row["softmax"]["peak_mib"] > row["attention_matrix_mib"] > row["performer"]["peak_mib"]
    skipped = result["windows"]["4096"]                  # projected past --max-seconds: skipped, with the reason
    assert all("projected" in skipped[kind]["skipped"] for kind in attention.KINDS)
    assert skipped["speedup"] is None and result["target_met"] is None
    assert 0 < result["favor_vs_softmax_relative_gap_w64"] < 1   # an approximation of the same block
    assert capsys.readouterr().out.count("\n") == 1


def test_student_latency_bench_reports_push_percentiles_and_its_reference(capsys):
    result = student_latency.main(["--frames", "40"])
    push, reference = result["push_ms"], result["reference_push_ms"]
    assert result["frames"] == 40 and result["window"] == 32 and result["threads"] == 1
    assert 0 < push["p50"] <= push["p90"] <= push["p99"]
    assert result["speedup_p50"] == round(reference["p50"] / push["p50"], 2)
    assert result["speedup_p50"] > 1                    # re-encoding the whole window costs more
    assert result["target_met"] == (push["p50"] <= result["target_ms"])
    assert result["speedup_over_eager_p50"] > 1         # the traced graphs beat the same modules run eagerly
    assert all(0 < part < reference["p99"] for part in result["reference_breakdown_ms_p50"].values())
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.skipif(not mars_available(), reason="MARS data not found (../shared/data/mars or $RADAR_POSE_MARS)")
def test_mars_bench_scores_the_student_and_both_references_on_the_same_frames(capsys, tmp_path):
    result = mars.main(["--epochs", "1", "--cnn-epochs", "1", "--dim", "32", "--depth", "1", "--window", "4",
                        "--windows-per-example", "4", "--batch-size", "16", "--threads", "2", "--cross",
                        "--workdir", str(tmp_path)])
    within = result["within_subjects"]
    frames = {within[k]["frames"] for k in ("student", "mean_pose", "mars_cnn")}
    assert frames == {2362 + 1769}                           # subjects 1 and 3, test split, every frame
    assert within["mean_pose"]["mae_cm"]["mean"] == pytest.approx(8.57, abs=0.01)   # measured independently
    assert 0 < result["student_mae_cm"] < 30 and 0 < result["mars_cnn_mae_cm"] < 300   # one epoch each
    assert result["student_over_cnn"] == round(result["student_mae_cm"] / result["mars_cnn_mae_cm"], 3)
    assert result["target_mae_met"] == (result["student_mae_cm"] <= 1.2)
    cross = result["cross_subject"]
    assert cross["subject1_to_subject3"]["student"]["frames"] == 1783 + 1769            # all of subject 3
    assert result["target_cross_met"] == all(r["student_over_mean_pose"] <= 0.4 for r in cross.values())
    for run in cross.values():   # a student that saw one person is off on average on the other: the bound is lower
        assert run["student_less_mean_error"]["mae_cm"]["mean"] < 0.95 * run["student"]["mae_cm"]["mean"]
        assert run["student_at_their_height"]["frames"] == run["student"]["frames"]

    def augment(run):
        return read_checkpoint(tmp_path / run / "student.pt")["train_config"]["augment"]
    # people of another size and place only across subjects
    assert (augment("student")["scale"], augment("student")["shift_m"]) == (0.0, 0.0)
    for run in ("cross_subject1", "cross_subject3"):
        assert (augment(run)["scale"], augment(run)["shift_m"]) == (0.08, 0.1)
    assert capsys.readouterr().out.count("\n") == 1


def test_a_skeleton_scaled_to_a_height_keeps_its_feet_on_the_floor():
    rng = np.random.default_rng(0)
    tall = rng.normal(0.0, 0.3, (5, 19, 3))
    tall[:, mars.ANKLES, 2] = -0.9                           # on the floor, 0.9 m below the radar
    tall[:, mars.HEAD, 2] = 0.8 + 0.01 * np.arange(5)         # head 1.70-1.74 m over the ankles
    assert mars.standing_height(tall) == pytest.approx(1.72)
    ankles = tall[:, mars.ANKLES].mean(axis=1, keepdims=True)
    short = mars.scaled_to_height(tall, 1.548)               # 0.9 of the height
    assert mars.standing_height(short) == pytest.approx(1.548)
    np.testing.assert_allclose(short[:, mars.ANKLES].mean(axis=1, keepdims=True), ankles)   # stands where it stood
    np.testing.assert_allclose(short[:, mars.ANKLES, 2], -0.9)                                # on the same floor
    np.testing.assert_allclose(short - ankles, 0.9 * (tall - ankles))         # the rest shrinks towards them


@pytest.mark.skipif(not mars_available(), reason="MARS data not found (../shared/data/mars or $RADAR_POSE_MARS)")
def test_mars_bench_runs_the_cross_subject_part_alone(capsys, tmp_path):
    with pytest.raises(SystemExit):                          # nothing to run
        mars.main(["--no-within"])
    with pytest.raises(SystemExit):                          # no cross-subject student to fine-tune
        mars.main(["--calibrate-frames", "60"])
    result = mars.main(["--epochs", "1", "--dim", "32", "--depth", "1", "--window", "4", "--windows-per-example", "4",
                        "--batch-size", "16", "--threads", "2", "--cross", "--no-within", "--calibrate-frames", "60",
                        "--calibrate-epochs", "1", "--workdir", str(tmp_path)])
    assert "within_subjects" not in result and "student_mae_cm" not in result
    assert set(result["cross_subject"]) == {"subject1_to_subject3", "subject3_to_subject1"}
    assert not (tmp_path / "student").exists() and not (tmp_path / "mars_train").exists()   # no within training
    assert result["cross_subject"]["subject3_to_subject1"]["student"]["frames"] == 2374 + 2362   # all of subject 1
    # fine-tuned on 60 frames of the other subject's validate split, scored on their test split
    calibrated = result["cross_subject"]["subject1_to_subject3"]["calibrated"]
    assert calibrated["session_frames"] == 60
    assert calibrated["student"]["frames"] == calibrated["before"]["frames"] == 1769
    assert calibrated["before"]["mae_cm"]["mean"] != calibrated["student"]["mae_cm"]["mean"]
    assert calibrated["source_mean_pose"]["mae_cm"]["mean"] == pytest.approx(9.595, abs=0.001)   # measured apart
    assert read_checkpoint(tmp_path / "calibrated_subject1" / "student.pt")["train_config"]["init"] == str(
        tmp_path / "cross_subject1" / "student.pt")
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.skipif(not mars_available(), reason="MARS data not found (../shared/data/mars or $RADAR_POSE_MARS)")
def test_a_calibration_session_takes_evenly_spaced_stretches_from_start_to_end():
    recording = load_mars("3", "validate")
    session = mars.calibration_session(recording, 600)
    assert [len(r) for r in session] == [60] * 10
    assert session[0].frame_numbers[0] == recording.frame_numbers[0]
    assert session[-1].frame_numbers[-1] == recording.frame_numbers[-1]
    firsts = [int(r.frame_numbers[0]) for r in session]
    assert firsts == sorted(firsts) and all(b - a >= 60 for a, b in zip(firsts, firsts[1:]))   # no overlap
    with pytest.raises(ValueError, match="stretches"):
        mars.calibration_session(recording, 5)                    # fewer frames than stretches
    with pytest.raises(ValueError, match="stretches"):
        mars.calibration_session(recording, len(recording) + 10)


def test_physics_bench_scores_before_and_after_on_the_same_frames(capsys):
    physics.main(["--motions", "squat", "--seeds", "1", "--noise"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1                                   # one JSON line
    result = json.loads(lines[0])
    squat = result["motions"]["squat/0"]
    assert squat["frames"] > 20 and squat["before"]["mpjpe_target_mm"] is None
    assert squat["after"]["skating_mm"] < squat["before"]["skating_mm"]
    assert squat["after"]["penetration_max_mm"] < squat["before"]["penetration_max_mm"]
    assert set(result["targets_met"]) == {"skating", "penetration", "jitter", "mpjpe", "speed"}
    assert result["summary"]["frames_per_s"] > 0


def test_the_stance_foot_agreement_reads_the_gait_off_an_estimate():
    from ros2_radar_pose.body.models import AnthropometricBody
    from ros2_radar_pose.physics.humanoid import FOOT
    from ros2_radar_pose.physics.tracker import FloorFrame

    truth, contacts, *_ = physics.noisy_sequence("walk", AnthropometricBody(), FloorFrame(), np.random.default_rng(0))
    assert physics.stance_foot_agreement(truth, contacts) > 0.9               # the truth walks
    swapped = truth.copy()
    swapped[:, list(FOOT)] = truth[:, list(reversed(FOOT))]
    assert physics.stance_foot_agreement(swapped, contacts) < 0.1             # feet the wrong way round
    gliding = truth.copy()
    gliding[:, list(FOOT), :2] = truth[:, :1, :2] + [[0.1, 0.0], [-0.1, 0.0]]  # feet carried along with the root,
    gliding[:, list(FOOT), :2] += np.random.default_rng(1).normal(0.0, 0.01, (len(truth), 2, 2))  # and noisy
    assert 0.2 < physics.stance_foot_agreement(gliding, contacts) < 0.8
    assert physics.stance_foot_agreement(truth, np.ones_like(contacts)) is None  # no single support


def test_physics_bench_refines_the_shipped_student_by_default(capsys):
    physics.main(["--motions", "side_lunge", "--seeds", "1"])
    result = json.loads(capsys.readouterr().out)
    assert result["input"].startswith("student") and result["input"].endswith("student_sim.pt on simulated clouds")
    lunge = result["motions"]["side_lunge/0"]
    assert lunge["after"]["penetration_max_mm"] < 5.0 < lunge["before"]["penetration_max_mm"]
    assert lunge["after"]["jitter_mm"] < lunge["before"]["jitter_mm"]


def test_physics_bench_scores_a_students_output_on_simulated_clouds(capsys, tmp_path):
    import torch

    from ros2_radar_pose.student.checkpoint import save_checkpoint
    from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig

    torch.manual_seed(0)
    model = RadarPoseStudent(StudentConfig(window=4, dim=32, depth=1, heads=2, nb_features=16, point_layers=2))
    model.set_statistics(torch.tensor([3.0, 0.0, 0.0, 0.0, 15.0]), torch.tensor([1.0, 1.0, 0.6, 0.5, 5.0]),
                         torch.tensor([3.0, 0.0, -0.1]))
    checkpoint = save_checkpoint(tmp_path / "student.pt", model)
    physics.main(["--motions", "squat", "--seeds", "1", "--checkpoint", str(checkpoint)])
    result = json.loads(capsys.readouterr().out)
    assert result["input"].startswith("student") and result["noise"] is None
    squat = result["motions"]["squat/0"]
    assert squat["frames"] > 20
    assert squat["after"]["penetration_max_mm"] <= squat["before"]["penetration_max_mm"] + 5


def test_teacher_bench_reports_hybrik_throughput_against_its_backbone(capsys):
    result = teacher.main(["--batches", "1", "--repeats", "1", "--device", "cpu"])
    row = result["hybrik"]["cpu"]["batches"]["1"]
    rates = [row[f"{name}_images_per_s"] for name in ("network", "estimate_no_ik", "backbone")]
    assert all(rate > 0 for rate in rates) and row["repeats"] == 1
    # the backbone is part of the network: the reference must be the faster of the two
    assert row["network_time_over_backbone"] == pytest.approx(rates[2] / rates[0], rel=0.02)
    assert row["network_time_over_backbone"] > 1
    assert result["hybrik"]["cpu"]["autocast"] is None and result["threads"] >= 1
    blazepose = result["blazepose"]
    assert (blazepose["images_per_s"] or 0) > 0 or blazepose["reason"]       # a rate, or why not
    assert capsys.readouterr().out.count("\n") == 1


def test_load_bench_feeds_the_graph_and_times_every_frame_it_sent(capsys, tmp_path):
    result = load.main(["--rates", "20", "--seconds", "3", "--warmup", "2", "--workdir", str(tmp_path),
                        "--no-recovery"])
    row = result["rates"][0]
    assert row["rate_hz"] == 20.0 and 50 <= row["frames_sent"] <= 62
    assert row["frames_out"] + row["dropped"] == row["frames_sent"] and row["frames_out"] > 0
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] and row["dds_loopback_p50_ms"] < row["p50_ms"]
    assert set(row["memory_growth_mb"]) == {"radar_ingest", "student", "physics"}
    assert all(mb > 50 for mb in row["memory_mb"].values())          # real processes were measured
    assert result["target_met_20hz"] in (True, False)
    assert capsys.readouterr().out.count("\n") == 1
