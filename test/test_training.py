"""Training from bags: pairing and reporting, targets, windows, augmentation, losses, the loop,
exact resume after a stop, fine-tuning, bad input, and two processes through torchrun (gloo)."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import console_script
from scipy.spatial.transform import Rotation

from ros2_radar_pose import topics
from ros2_radar_pose.body.joint_sets import HYBRIK_29, MARS_19, SMPL_24
from ros2_radar_pose.data.bags import BagError, BagWriter
from ros2_radar_pose.data.synthetic import simulate_bag
from ros2_radar_pose.student.checkpoint import CheckpointError, load_student, read_checkpoint, save_checkpoint
from ros2_radar_pose.student.model import RadarPoseStudent, StudentConfig, StudentPose, windows_of
from ros2_radar_pose.train.dataset import NO_AUGMENT, Augment, WindowDataset, _mirror, _rotation_targets, load_bag
from ros2_radar_pose.train.evaluate import predict_last_frames
from ros2_radar_pose.train.losses import LossWeights, pose_losses
from ros2_radar_pose.train.trainer import TrainConfig, TrainingError, epoch_batches, train

TINY = StudentConfig(window=8, dim=32, depth=1, heads=2, nb_features=16, point_layers=2)


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "sim"
    simulate_bag(path, subjects=2, minutes=0.25, seed=3)
    return path


def quiet(_):
    pass


def config(bag, out, **overrides):
    settings = dict(bags=[str(bag)], out_dir=str(out), epochs=2, batch_size=4, windows_per_example=4, student=TINY,
                    warmup_steps=10, checkpoint_every=5, log_every=5, progress_bar=False)
    return TrainConfig(**{**settings, **overrides})


def test_bag_frames_are_paired_and_the_unlabelled_reported(sim_bag):
    recordings, report = load_bag(sim_bag, "smpl_24", rotations=True)
    assert report.frames == 600 and report.recordings == 2 == len(recordings)    # a 2 s gap between subjects
    assert 0 < report.unlabelled < 60 and report.labelled + report.unlabelled == report.frames
    assert report.label_joint_set == "smpl_24" and report.with_rotations
    assert f"{report.unlabelled} without a label" in report.summary()
    rec = recordings[0]
    assert rec.targets.shape == (300, 29, 3) and rec.twist.shape == (300, 23, 2)
    assert np.isnan(rec.targets[~rec.labelled]).all() and np.isfinite(rec.targets[rec.labelled]).all()
    # leaf targets hang off their parents at the rest bone's length: the head top about 20 cm above the head
    head, top = SMPL_24.index("head"), HYBRIK_29.index("head_top")
    length = np.linalg.norm(rec.targets[rec.labelled, top] - rec.targets[rec.labelled, head], axis=-1)
    assert 0.1 < length.min() and length.max() < 0.3 and np.ptp(length) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(rec.twist[rec.labelled], axis=-1), 1.0, atol=1e-5)


def test_a_window_pads_the_start_of_a_recording_with_empty_frames(sim_bag):
    recordings, _ = load_bag(sim_bag, "smpl_24", rotations=True)
    dataset = WindowDataset(recordings, window=8)
    first = dataset[0]
    t = int(dataset.index[0][1])
    assert first["points"].shape == (8, 64, 5) and not first["mask"][:7 - t].any()
    assert not first["labelled"][:7 - t].any() and first["labelled"][-1]
    last = dataset[len(dataset) - 1]
    assert last["mask"].any(dim=1).all()                                       # late windows are full


def mars_style_bag(path, frames=40, label_count=19):
    rng = np.random.default_rng(0)
    with BagWriter(path) as writer:
        for t in range(frames):
            stamp = 10**18 + t * 10**8
            writer.write_cloud(topics.RADAR_POINTS, stamp, "radar_link", rng.normal(size=(20, 5)).astype("f4"))
            writer.write_skeleton(topics.TEACHER_SKELETON, stamp, "radar_link", rng.normal(size=(label_count, 3)))
    return path


def test_labels_of_another_joint_set_are_mapped_or_refused(tmp_path):
    bag = mars_style_bag(tmp_path / "mars")
    recordings, report = load_bag(bag, "mars_19", rotations=False)
    assert report.label_joint_set == "mars_19" and recordings[0].targets.shape == (40, 19, 3)
    with pytest.raises(ValueError, match="--no-rotations"):
        load_bag(bag, "smpl_24", rotations=True)
    with pytest.raises(ValueError, match="13 joints"):
        load_bag(mars_style_bag(tmp_path / "odd", label_count=13), "mars_19", rotations=False)
    with pytest.raises(BagError, match="no label topic"):
        load_bag(bag, "mars_19", rotations=False, label_topic="/nothing")


def test_augmentation_moves_points_and_labels_together_and_repeats_by_seed(sim_bag):
    recordings, _ = load_bag(sim_bag, "smpl_24", rotations=True)
    plain = WindowDataset(recordings, 8, NO_AUGMENT)
    rigid = Augment(point_dropout=0.0, jitter_m=0.0, jitter_velocity=0.0, jitter_intensity=0.0, ghosts=0.0)
    moved = WindowDataset(recordings, 8, rigid, seed=1)
    a, b = plain[100], moved[100]
    known = b["labelled"]
    # a similarity transform: distances from the pelvis scale by one common factor, for labels and points
    def spread(x, centre):
        return torch.linalg.vector_norm(x - centre, dim=-1)
    after, before = b["targets"][known], a["targets"][known]
    ratio = spread(after, after[:, :1]) / spread(before, before[:, :1]).clamp(min=1e-6)
    assert torch.allclose(ratio[:, 1:], ratio[:, 1:].mean(), atol=1e-3)
    assert not torch.allclose(a["targets"][known], b["targets"][known])
    # about the feet: a person of another size stands on the same floor (radar frame z = 0: the radar)
    assert float(b["targets"][known][..., 2].min()) == pytest.approx(float(a["targets"][known][..., 2].min()), abs=1e-5)
    assert abs(float(ratio[:, 1:].mean()) - 1) > 1e-3                     # and it did scale
    torch.testing.assert_close(moved[100]["targets"], b["targets"], equal_nan=True)   # same (seed, epoch, index)
    moved.set_epoch(1)
    assert not torch.allclose(torch.nan_to_num(moved[100]["targets"]), torch.nan_to_num(b["targets"]))
    noisy = WindowDataset(recordings, 8, Augment(ghosts=5.0), seed=1)[100]
    assert noisy["mask"].sum() != a["mask"].sum() and torch.isfinite(noisy["points"]).all()


def test_mirror_augmentation_gives_the_labels_of_the_mirrored_person(sim_bag):
    recordings, _ = load_bag(sim_bag, "smpl_24", rotations=True)
    rec = recordings[0]
    known = rec.labelled
    assert np.abs(rec.twist[known][..., 1]).max() > 0.3          # twists to get wrong: a sign error would show
    # The mirrored person labelled from scratch: y -> -y in the radar frame. A joint's orientation maps
    # the body's own frame, whose left-right axis is x, so it becomes M R M_body on the other side's joint.
    side = list(SMPL_24.mirrored)
    radar, body = np.diag([1.0, -1.0, 1.0]), np.diag([-1.0, 1.0, 1.0])
    rotations = Rotation.from_quat(rec.orientations[known].reshape(-1, 4)).as_matrix().reshape(-1, 24, 3, 3)
    image_rotations = radar @ rotations[:, side] @ body
    image_positions = rec.targets[known][:, :24][:, side] * np.array([1.0, -1.0, 1.0], np.float32)
    quaternions = Rotation.from_matrix(image_rotations.reshape(-1, 3, 3)).as_quat().reshape(-1, 24, 4)
    targets, twist = _rotation_targets(image_positions, quaternions, np.ones(int(known.sum()), bool))

    example = {"points": rec.points[known].copy(), "targets": rec.targets[known].copy(),
               "twist": rec.twist[known].copy()}
    _mirror(example, HYBRIK_29.mirrored)
    np.testing.assert_allclose(example["targets"], targets, atol=1e-4)
    np.testing.assert_allclose(example["twist"], twist, atol=1e-4)
    np.testing.assert_array_equal(example["points"][..., 1], -rec.points[known][..., 1])
    np.testing.assert_array_equal(example["points"][..., [0, 2, 3, 4]], rec.points[known][..., [0, 2, 3, 4]])

    # the dataset mirrors a window with the chance asked for
    plain = WindowDataset(recordings, 8, NO_AUGMENT)
    for chance, low, high in ((1.0, 40, 40), (0.5, 10, 30), (0.0, 0, 0)):
        dataset = WindowDataset(recordings, 8, dataclasses.replace(NO_AUGMENT, mirror=chance))
        mirrored = sum(torch.allclose(torch.nan_to_num(dataset[i]["targets"][..., 1]),
                                      torch.nan_to_num(-plain[i]["targets"][..., HYBRIK_29.mirrored, 1]))
                       for i in range(60, 100))
        assert low <= mirrored <= high, chance


def test_a_person_coming_into_view_empties_the_frames_before_and_leaves_the_rest(sim_bag):
    recordings, _ = load_bag(sim_bag, "smpl_24", rotations=True)
    plain = WindowDataset(recordings, 8, NO_AUGMENT, windows=4)
    appearing = WindowDataset(recordings, 8, dataclasses.replace(NO_AUGMENT, appear=1.0), windows=4)
    firsts, full = set(), [i for i in range(len(plain))
                            if plain[i]["mask"].any(dim=1).all() and plain[i]["labelled"].all()]
    assert len(full) >= 40
    for i in full[:40]:
        a, b = plain[i], appearing[i]
        seen = b["mask"].any(dim=1)
        first = int(seen.to(torch.int64).argmax())
        assert 1 <= first < 11 and not seen[:first].any() and not b["labelled"][:first].any()
        assert torch.isnan(b["targets"][:first]).all() and torch.isnan(b["twist"][:first]).all()
        assert (b["points"][:first] == 0).all()
        # the frames from the first one on are the plain ones
        torch.testing.assert_close(b["points"][first:], a["points"][first:])
        torch.testing.assert_close(b["targets"][first:], a["targets"][first:])
        assert b["labelled"][first:].all() and torch.equal(b["mask"][first:], a["mask"][first:])
        firsts.add(first)
    assert len(firsts) >= 5                                                 # where they appear varies
    # at chance 0 (with another augmentation, so that _augment runs) every frame keeps its label
    never = WindowDataset(recordings, 8, dataclasses.replace(NO_AUGMENT, jitter_m=0.01, appear=0.0), windows=4)
    assert all(never[i]["labelled"].all() for i in full[:40])


def test_losses_vanish_at_the_truth_and_ignore_what_is_unknown():
    targets = torch.randn(2, 4, 19, 3)
    labelled = torch.tensor([[True, True, False, True], [True] * 4])
    batch = {"targets": targets.clone(), "labelled": labelled}
    batch["targets"][0, 2] = float("nan")                      # an unlabelled frame holds NaN
    batch["targets"][1, 1, 5] = float("nan")                   # a joint the label lacks
    exact = StudentPose(targets[:, :, 0], targets.clone())
    terms = pose_losses(exact, batch, MARS_19)
    assert all(float(terms[k]) < 1e-6 for k in ("joints", "bones", "velocity", "total"))
    shifted = StudentPose(targets[:, :, 0], targets + torch.tensor([0.01, 0.02, 0.03]))
    terms = pose_losses(shifted, batch, MARS_19)
    assert float(terms["joints"]) == pytest.approx(0.02, abs=1e-6)          # mean L1 over the axes
    assert float(terms["bones"]) < 1e-5 and float(terms["velocity"]) < 1e-5  # a constant offset keeps both
    shaky = targets.clone()
    shaky[:, 1::2] += 0.05
    assert float(pose_losses(StudentPose(shaky[:, :, 0], shaky), batch, MARS_19)["velocity"]) > 0.02


def test_the_newest_frame_weight_adds_that_frame_s_error_alone():
    targets = torch.zeros(2, 4, 19, 3)
    batch = {"targets": targets, "labelled": torch.ones(2, 4, dtype=torch.bool)}
    late = targets.clone()
    late[:, -1] += 0.04                                        # only the newest frame is wrong
    early = targets.clone()
    early[:, 0] += 0.04                                        # only the oldest
    plain = pose_losses(StudentPose(late[:, :, 0], late), batch, MARS_19)
    assert "newest" not in plain
    weighted = pose_losses(StudentPose(late[:, :, 0], late), batch, MARS_19, LossWeights(newest=2.0))
    assert float(weighted["newest"]) == pytest.approx(0.04, abs=1e-6)
    assert float(weighted["total"]) == pytest.approx(float(plain["total"]) + 0.08, abs=1e-6)
    other = pose_losses(StudentPose(early[:, :, 0], early), batch, MARS_19, LossWeights(newest=2.0))
    assert float(other["newest"]) < 1e-7


def test_stretches_make_each_frame_the_newest_of_one_window_and_predict_as_windows_do(sim_bag):
    recordings, _ = load_bag(sim_bag, "smpl_24", rotations=False)
    stretched = WindowDataset(recordings, 8, windows=5)
    newest = torch.cat([windows_of(stretched[i]["labelled"][None], 8)[:, -1] for i in range(len(stretched))])
    assert int(newest.sum()) == sum(int(r.labelled.sum()) for r in recordings)
    torch.manual_seed(0)
    model = RadarPoseStudent(StudentConfig(**{**TINY.__dict__, "rotations": False, "joint_set": "smpl_24"})).eval()
    predictions, truth = predict_last_frames(model, recordings)
    single = WindowDataset(recordings, 8)
    with torch.no_grad():
        for i in (0, 7, len(single) - 1):
            one = single[i]
            expected = model(one["points"][None], one["mask"][None]).joints[0, -1].numpy()
            np.testing.assert_allclose(predictions[i], expected, atol=1e-5)
            np.testing.assert_array_equal(truth[i], one["targets"][-1].numpy())


def test_epoch_batches_split_one_permutation_between_processes():
    single = epoch_batches(40, 4, seed=0, epoch=2)
    halves = [epoch_batches(40, 2, seed=0, epoch=2, rank=r, world=2) for r in (0, 1)]
    assert [sorted(a + b) for a, b in zip(*halves)] == [sorted(s) for s in single]
    assert epoch_batches(40, 4, 0, 3) != single


@pytest.mark.slow
def test_training_learns_and_eval_beats_the_mean_pose(sim_bag, tmp_path):
    # Scored on its own 30 s of training data; an absolute-coordinate student learns those places by
    # heart (0.47 of the mean pose), a centred one cannot (0.64): the test is of the training.
    result = train(config(sim_bag, tmp_path / "run", epochs=8, augment=NO_AUGMENT, lr=3e-3,
                          student=StudentConfig(**{**TINY.__dict__, "dropout": 0.0, "centred": False})), log=quiet)
    assert (tmp_path / "run" / "student.pt").exists() and (tmp_path / "run" / "last.pt").exists()
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    model = load_student(result.checkpoint, expect={"joint_set": "smpl_24"})
    recordings, _ = load_bag(sim_bag, "smpl_24", rotations=False)
    predictions, truth = predict_last_frames(model, recordings)
    error = np.linalg.norm(predictions - truth, axis=-1).mean()
    mean_pose = np.linalg.norm(truth.mean(axis=0) - truth, axis=-1).mean()
    assert error < 0.6 * mean_pose, (error, mean_pose)


@pytest.mark.slow
@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_after_a_stop_gives_exactly_the_uninterrupted_model(sim_bag, tmp_path, ema):
    whole = train(config(sim_bag, tmp_path / "whole", ema=ema), log=quiet)
    polls = iter(range(1000))
    stopped = train(config(sim_bag, tmp_path / "crash", ema=ema), should_stop=lambda: next(polls) == 30, log=quiet)
    assert stopped.stopped_early and stopped.steps == 31 and not (tmp_path / "crash" / "student.pt").exists()
    resumed = train(config(sim_bag, tmp_path / "crash", resume=True, ema=ema), log=quiet)
    assert resumed.steps == whole.steps
    a, b = read_checkpoint(whole.checkpoint)["model"], read_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainingError, match="steps in all"):
        train(config(sim_bag, tmp_path / "crash", resume=True, epochs=3, ema=ema), log=quiet)
    last = read_checkpoint(tmp_path / "whole" / "last.pt")
    if ema:      # student.pt holds the average, last.pt the weights trained on and the average to resume
        assert last["train"]["ema_steps"] == whole.steps
        assert all(torch.equal(a[k], last["train"]["ema"][k]) for k in a)
        assert not all(torch.equal(a[k], last["model"][k]) for k in a)
        with pytest.raises(TrainingError, match="without a weight average"):
            train(config(sim_bag, tmp_path / "plain", epochs=1), log=quiet)
            train(config(sim_bag, tmp_path / "plain", epochs=1, resume=True, ema=ema), log=quiet)
    else:
        assert "ema" not in last["train"] and all(torch.equal(a[k], last["model"][k]) for k in a)


@pytest.mark.slow
def test_fine_tuning_starts_from_a_checkpoint_and_keeps_its_config(sim_bag, tmp_path):
    first = train(config(sim_bag, tmp_path / "pre", epochs=1), log=quiet)
    tuned = train(config(sim_bag, tmp_path / "fine", epochs=1, init=str(first.checkpoint),
                         student=StudentConfig()), log=quiet)                 # its own config is ignored
    assert read_checkpoint(tuned.checkpoint)["config"] == read_checkpoint(first.checkpoint)["config"]
    before = read_checkpoint(first.checkpoint)["model"]["point_mean"]
    torch.testing.assert_close(read_checkpoint(tuned.checkpoint)["model"]["point_mean"], before)


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_student(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="damaged or not a torch file"):
        load_student(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a student checkpoint"):
        load_student(tmp_path / "other.pt")


def test_a_checkpoint_from_before_centring_loads_as_it_was_trained(tmp_path):
    # Its config has no "centred" and its weights no anchor_motion: it anchors at the mean root.
    old = RadarPoseStudent(StudentConfig(window=4, dim=16, depth=1, heads=2, nb_features=8, centred=False))
    save_checkpoint(tmp_path / "old.pt", old)
    payload = torch.load(tmp_path / "old.pt", weights_only=True)
    del payload["config"]["centred"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_student(tmp_path / "old.pt")
    assert not loaded.config.centred and not hasattr(loaded, "anchor_motion")


@pytest.mark.slow
def test_a_damaged_bag_trains_on_what_it_has(sim_bag, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(sim_bag, damaged)
    mcap = next(damaged.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:len(data) // 2])
    recordings, report = load_bag(damaged, "smpl_24", rotations=True)
    assert 0 < report.frames < 600 and any("damaged" in p or "truncat" in p.lower() for p in report.problems)
    result = train(config(damaged, tmp_path / "run", epochs=1), log=quiet)
    assert result.steps > 0


@pytest.mark.slow
def test_cli_trains_and_evaluates(sim_bag, tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run([console_script("radar-pose"), "train", str(sim_bag), "--out-dir", str(out), "--epochs", "1",
                          "--window", "8", "--dim", "32", "--depth", "1", "--heads", "2", "--nb-features", "16",
                          "--no-progress-bar"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "without a label" in run.stdout and "wrote" in run.stdout
    evaluation = subprocess.run([console_script("radar-pose"), "eval", str(out / "student.pt"), str(sim_bag),
                                 "--label-topic", topics.GROUND_TRUTH_SKELETON, "--json", str(tmp_path / "s.json")],
                                capture_output=True, text=True, timeout=300)
    assert evaluation.returncode == 0, evaluation.stderr
    assert "MPJPE" in evaluation.stdout and (out / "student.eval.png").stat().st_size > 10_000
    assert "orientation error" in evaluation.stdout                      # an SMPL student against true orientations
    scores = json.loads((tmp_path / "s.json").read_text())
    assert 0 < scores["orientation_error_deg"]["mean"] < 180 and scores["mpjpe_cm"] > 0
    bad = subprocess.run([console_script("radar-pose"), "eval", str(tmp_path / "nope.pt"), str(sim_bag)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "no such file" in bad.stderr


@pytest.mark.slow
def test_two_processes_train_one_model_through_torchrun(sim_bag, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "ros2_radar_pose.cli", "train",
                          str(sim_bag), "--out-dir", str(out), "--epochs", "1", "--batch-size", "2", "--window", "8",
                          "--windows-per-example", "4",
                          "--dim", "32", "--depth", "1", "--heads", "2", "--nb-features", "16", "--device", "cpu",
                          "--no-progress-bar"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 processes" in run.stdout and run.stdout.count("finished step") == 1    # rank 0 speaks
    stretches = len(WindowDataset(load_bag(sim_bag, "smpl_24", rotations=True)[0], 8, windows=4))
    steps = stretches // 4                                                 # each step takes 2 x 2 stretches
    assert f"finished step {steps}/{steps}" in run.stdout
    assert load_student(out / "student.pt").config.window == 8
