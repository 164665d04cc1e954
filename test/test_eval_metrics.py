"""Evaluation metrics against hand-computed answers, and the PNG report."""
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body.joint_sets import MARS_19, SMPL_24, JointSet
from ros2_radar_pose.train.metrics import (
    Scores,
    mae,
    mae_per_axis,
    mpjpe,
    pa_mpjpe,
    per_joint_mpjpe,
    procrustes_align,
    root_relative_mpjpe,
    score,
)
from ros2_radar_pose.train.plots import DPI, SIZE_IN, write_report_png

CM = 0.01


def skeletons(joint_set: JointSet, frames: int, seed: int = 0) -> np.ndarray:
    """(frames, J, 3) body-sized, non-planar skeletons walking about in front of the radar."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 0.15, (len(joint_set), 3))
    joints = np.zeros((frames, len(joint_set), 3))
    for j in np.argsort(joint_set.depths, kind="stable"):      # parents before children
        parent = joint_set.parents[j]
        wobble = rng.normal(0, 0.02, (frames, 3))
        joints[:, j] = (joints[:, parent] if parent >= 0 else 0.0) + offsets[j] + (wobble if parent >= 0 else 0)
    t = np.linspace(0, 2 * np.pi, frames)
    return joints + np.stack([3 + 0.5 * np.sin(t), 0.3 * np.cos(t), np.full(frames, 1.0)], axis=1)[:, None]


# --- metrics ------------------------------------------------------------------------------------

def test_constant_offset_gives_the_offset_per_axis():
    truth = skeletons(SMPL_24, 10)
    pred = truth + np.array([1.0, 2.0, 3.0]) * CM
    np.testing.assert_allclose(mae_per_axis(pred, truth), [CM, 2 * CM, 3 * CM], atol=1e-12)
    assert mae(pred, truth) == pytest.approx(2 * CM)
    assert mpjpe(pred, truth) == pytest.approx(np.sqrt(14) * CM)
    np.testing.assert_allclose(per_joint_mpjpe(pred, truth), np.full(24, np.sqrt(14) * CM))
    assert pa_mpjpe(pred, truth) == pytest.approx(0, abs=1e-9)
    assert root_relative_mpjpe(pred, truth) == pytest.approx(0, abs=1e-12)


def test_hand_computed_errors_per_axis_and_per_joint():
    truth = np.zeros((2, 2, 3))
    pred = np.array([[[3, 4, 0], [0, 0, 0]],            # joint 0 off by 5 cm, joint 1 exact
                     [[0, 0, 1], [-6, 8, 0]]]) * CM     # joint 0 off by 1 cm, joint 1 by 10 cm
    np.testing.assert_allclose(mae_per_axis(pred, truth), np.array([9 / 4, 12 / 4, 1 / 4]) * CM)
    assert mae(pred, truth) == pytest.approx((9 + 12 + 1) / 12 * CM)
    np.testing.assert_allclose(per_joint_mpjpe(pred, truth), [3 * CM, 5 * CM])
    assert mpjpe(pred, truth) == pytest.approx(4 * CM)
    # Relative to joint 0: frame 0 joint 1 is off by 5 cm, frame 1 by |(-6, 8, -1)| cm.
    assert root_relative_mpjpe(pred, truth, root=0) == pytest.approx((5 + np.sqrt(101)) / 4 * CM)


def test_similarity_transform_is_forgiven_by_pa_mpjpe_only():
    truth = skeletons(SMPL_24, 20, seed=1)
    rotations = Rotation.random(20, random_state=2).as_matrix()
    scale = np.linspace(0.7, 1.4, 20)[:, None, None]
    pred = scale * np.einsum("tik,tjk->tji", rotations, truth) + np.array([0.5, -1.0, 0.2])
    assert mpjpe(pred, truth) > 0.1
    assert pa_mpjpe(pred, truth) == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(procrustes_align(pred, truth), truth, atol=1e-9)


def test_a_mirror_image_is_not_aligned_away():
    truth = skeletons(SMPL_24, 5, seed=3)
    rotation = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    mirrored = (truth * np.array([1.0, -1.0, 1.0])) @ rotation.T       # left and right swapped
    # An orthogonal fit that allowed reflections would undo the mirror exactly ...
    x = mirrored[0] - mirrored[0].mean(axis=0)
    y = truth[0] - truth[0].mean(axis=0)
    u, _, vt = np.linalg.svd(x.T @ y)
    assert np.linalg.det(vt.T @ u.T) < 0
    np.testing.assert_allclose(x @ (vt.T @ u.T).T, y, atol=1e-9)
    # ... a proper rotation cannot.
    assert pa_mpjpe(mirrored, truth) > 2 * CM


def test_procrustes_alignment_is_the_least_squares_optimum():
    truth = skeletons(SMPL_24, 1, seed=4)[0]
    rng = np.random.default_rng(5)
    pred = 1.1 * truth @ Rotation.random(random_state=6).as_matrix().T + rng.normal(0, 0.05, truth.shape)
    aligned = procrustes_align(pred[None], truth[None])[0]
    best = ((aligned - truth) ** 2).sum()

    def cost(params):
        moved = np.exp(params[0]) * Rotation.from_rotvec(params[1:4]).apply(aligned) + params[4:]
        return ((moved - truth) ** 2).sum()

    assert minimize(cost, np.zeros(7), method="BFGS").fun >= best - 1e-9


def test_a_collapsed_prediction_aligns_to_the_centroid():
    truth = skeletons(SMPL_24, 2, seed=7)
    pred = np.ones_like(truth)
    aligned = procrustes_align(pred, truth)
    np.testing.assert_allclose(aligned, np.broadcast_to(truth.mean(axis=1, keepdims=True), truth.shape))
    assert np.isfinite(pa_mpjpe(pred, truth))


def test_mask_selects_the_frames_scored():
    truth = skeletons(MARS_19, 12, seed=8)
    pred = truth + np.random.default_rng(9).normal(0, 0.05, truth.shape)
    mask = np.zeros(12, dtype=bool)
    mask[[1, 4, 5, 10]] = True
    pred_wild, truth_nan = pred.copy(), truth.copy()
    pred_wild[~mask] += 100.0
    truth_nan[~mask] = np.nan                            # unscored frames may lack ground truth
    masked = score(pred_wild, truth_nan, "mars_19", mask=mask)
    subset = score(pred[mask], truth[mask], MARS_19)
    assert (masked.frames, masked.frames_total, subset.frames_total) == (4, 12, 4)
    assert dataclasses.replace(masked, frames_total=4) == subset
    assert mpjpe(pred_wild, truth_nan, mask=mask) == pytest.approx(subset.mpjpe_m)
    assert score(pred, truth, MARS_19).mpjpe_m != pytest.approx(subset.mpjpe_m)


def test_score_gathers_every_metric():
    truth = skeletons(SMPL_24, 6, seed=10)
    pred = truth + np.random.default_rng(11).normal(0, 0.03, truth.shape)
    scores = score(pred, truth, "smpl_24")
    assert scores.joint_names == SMPL_24.names and scores.root_joint == "pelvis"
    np.testing.assert_allclose(scores.mae_xyz_m, mae_per_axis(pred, truth))
    assert scores.mae_m == pytest.approx(mae(pred, truth))
    assert scores.mpjpe_m == pytest.approx(mpjpe(pred, truth))
    assert scores.pa_mpjpe_m == pytest.approx(pa_mpjpe(pred, truth))
    assert scores.pa_mpjpe_m < scores.mpjpe_m
    assert scores.root_relative_mpjpe_m == pytest.approx(root_relative_mpjpe(pred, truth, 0))
    np.testing.assert_allclose(scores.per_joint_mpjpe_m, per_joint_mpjpe(pred, truth))
    assert score(pred[:, :19], truth[:, :19], MARS_19).root_joint == "SpineBase"
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.mpjpe_m = 0.0


def test_json_dict_is_in_centimetres():
    truth = skeletons(SMPL_24, 4)
    scores = score(truth + np.array([1.0, 2.0, 3.0]) * CM, truth, SMPL_24)
    report = json.loads(json.dumps(scores.to_json_dict()))
    assert report["mae_cm"] == {"x": 1.0, "y": 2.0, "z": 3.0, "mean": 2.0}
    assert report["mpjpe_cm"] == pytest.approx(np.sqrt(14), abs=1e-3)
    assert report["pa_mpjpe_cm"] == pytest.approx(0, abs=1e-3)
    assert report["root_relative_mpjpe_cm"] == pytest.approx(0, abs=1e-3)
    assert list(report["per_joint_mpjpe_cm"]) == list(SMPL_24.names)
    assert (report["frames"], report["frames_total"], report["joint_set"]) == (4, 4, "smpl_24")


def test_format_table_reads_in_joint_order_or_worst_first():
    truth = skeletons(MARS_19, 3)
    pred = truth.copy()
    pred[:, MARS_19.index("WristLeft"), 2] += 20 * CM
    scores = score(pred, truth, MARS_19)
    table = scores.format_table()
    assert "MPJPE" in table and "PA-MPJPE" in table and "x 0.00" in table
    joint_lines = table.splitlines()[-19:]
    assert [line.split()[0] for line in joint_lines] == list(MARS_19.names)
    worst_first = scores.format_table(MARS_19.names, sort_by_error=True).splitlines()[-19:]
    assert worst_first[0].split()[:2] == ["WristLeft", "20.00"]
    with pytest.raises(ValueError, match="3 joint names for 19 joints"):
        scores.format_table(("a", "b", "c"))


@pytest.mark.parametrize(("pred_shape", "truth_shape", "message"), [
    ((4, 24, 3), (4, 19, 3), "differ in shape"),
    ((4, 24, 2), (4, 24, 2), r"\(T, J, 3\)"),
    ((24, 3), (24, 3), r"\(T, J, 3\)"),
    ((0, 24, 3), (0, 24, 3), "nothing to score"),
    ((4, 0, 3), (4, 0, 3), "nothing to score"),
])
def test_bad_shapes_raise(pred_shape, truth_shape, message):
    with pytest.raises(ValueError, match=message):
        score(np.zeros(pred_shape), np.zeros(truth_shape), SMPL_24)


def test_bad_values_and_masks_raise():
    truth = skeletons(SMPL_24, 5)
    with pytest.raises(ValueError, match="truth has NaN or inf in 2 of the 5 scored frames"):
        truth_nan = truth.copy()
        truth_nan[[1, 3], 7, 0] = np.nan
        score(truth, truth_nan, SMPL_24)
    with pytest.raises(ValueError, match="pred has NaN or inf in 1 of the 5"):
        pred_inf = truth.copy()
        pred_inf[2, 0, 1] = np.inf
        mpjpe(pred_inf, truth)
    with pytest.raises(ValueError, match="mask must be"):
        score(truth, truth, SMPL_24, mask=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="mask must be"):
        score(truth, truth, SMPL_24, mask=np.array([0, 1, 2, 3, 4]))     # indices, not a mask
    with pytest.raises(ValueError, match="selects none of the 5 frames"):
        score(truth, truth, SMPL_24, mask=np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="mars_19 has 19 joints, the poses 24"):
        score(truth, truth, MARS_19)
    with pytest.raises(ValueError, match="unknown joint set"):
        score(truth, truth, "coco_17")
    with pytest.raises(ValueError, match="root joint 24"):
        root_relative_mpjpe(truth, truth, root=24)


# --- the PNG report -----------------------------------------------------------------------------

def _report_inputs(joint_set: JointSet, frames: int = 60):
    truth = skeletons(joint_set, frames, seed=12)
    pred = truth + np.random.default_rng(13).normal(0, 0.04, truth.shape)
    return score(pred, truth, joint_set), pred, truth


def _assert_readable_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[:2] == (round(SIZE_IN[1] * DPI), round(SIZE_IN[0] * DPI))
    assert image.shape[2] in (3, 4) and image[..., :3].std() > 0.05      # drawn on, not blank


def test_report_png_is_written(tmp_path):
    scores, pred, truth = _report_inputs(SMPL_24)
    stamps = 1.7e9 + np.arange(len(pred)) / 10.0
    path = write_report_png(tmp_path / "eval" / "report.png", scores, pred, truth, SMPL_24,
                            stamps_s=stamps, title="walk_01 (test)")
    assert path == tmp_path / "eval" / "report.png"
    _assert_readable_png(path)


def test_report_png_copes_with_gaps_and_sets_without_wrists(tmp_path):
    legs = SMPL_24.subset("legs", ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee"))
    truth = skeletons(legs, 30, seed=14)
    pred = truth + 0.02
    mask = np.ones(30, dtype=bool)
    mask[10:15] = False
    truth[~mask] = np.nan
    scores = score(pred, truth, legs, mask=mask)
    _assert_readable_png(write_report_png(tmp_path / "legs.png", scores, pred, truth, legs))


def test_reports_can_be_written_from_threads(tmp_path):
    scores, pred, truth = _report_inputs(MARS_19, 20)
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda i: write_report_png(tmp_path / f"{i}.png", scores, pred, truth, "mars_19"),
                              range(2)))
    for path in paths:
        _assert_readable_png(path)


def test_report_rejects_inputs_that_do_not_match(tmp_path):
    scores, pred, truth = _report_inputs(SMPL_24, 10)
    with pytest.raises(ValueError, match="must both be"):
        write_report_png(tmp_path / "a.png", scores, pred, truth[:5], SMPL_24)
    with pytest.raises(ValueError, match="stamps_s must be"):
        write_report_png(tmp_path / "b.png", scores, pred, truth, SMPL_24, stamps_s=np.arange(9.0))
    with pytest.raises(ValueError, match="mars_19 has 19 joints, the poses 24"):
        write_report_png(tmp_path / "c.png", scores, pred, truth, MARS_19)
    with pytest.raises(ValueError, match="scores are for smpl_24, the poses for mars_19"):
        write_report_png(tmp_path / "d.png", scores, pred[:, :19], truth[:, :19], MARS_19)
    assert isinstance(scores, Scores) and not list(tmp_path.iterdir())


def test_gaps_between_recordings_take_one_frame_and_break_the_lines():
    from ros2_radar_pose.train.plots import _without_gaps

    stamps = np.r_[np.arange(5) * 0.1, 3600.0 + np.arange(3) * 0.1]
    pred = truth = np.ones((8, 2, 3))
    pred_out, truth_out, time = _without_gaps(pred, truth, stamps)
    assert len(time) == 9 and np.isnan(pred_out[5]).all() and np.isnan(truth_out[5]).all()
    np.testing.assert_allclose(time[[0, 4, 6, 8]], [0.0, 0.4, 0.5, 0.7])     # the hour became one period


def test_orientation_errors_are_geodesic_angles_whatever_the_quaternion_sign():
    from ros2_radar_pose.train.metrics import orientation_errors_deg

    identity = np.tile([0.0, 0.0, 0.0, 1.0], (3, 2, 1))
    quarter = np.tile([0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)], (3, 2, 1))
    quarter[:, 1] *= -1.0                                    # the same rotation, the other sign
    np.testing.assert_allclose(orientation_errors_deg(quarter, identity), [90.0, 90.0], atol=1e-6)
    truth = identity.copy()
    truth[1] = np.nan                                        # a frame without a label is left out
    np.testing.assert_allclose(orientation_errors_deg(identity, truth), [0.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(T, J, 4\)"):
        orientation_errors_deg(identity[..., :3], identity[..., :3])
