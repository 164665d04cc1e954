"""Pose accuracy: MAE per axis (as MARS reports it), MPJPE, PA-MPJPE and per-joint MPJPE.

Every function takes predicted and true joints ``(T, J, 3)`` in metres, in the radar frame
(x forward, y left, z up), and an optional ``(T,)`` bool mask of the frames to score; values come
back in metres. ``score`` gathers them all into ``Scores``, which reports in centimetres.

- MAE follows An & Ogras 2021 (MARS): the mean over frames and joints of the absolute error of
  each coordinate; their single "MAE" figure is the mean of the three axes.
- MPJPE is the mean over frames and joints of the Euclidean joint error.
- PA-MPJPE is MPJPE after aligning each predicted frame to the truth by the least-squares
  similarity transform (scale, rotation, translation; Umeyama 1991). Reflections are excluded, so
  a mirrored skeleton keeps its error.
- Root-relative MPJPE subtracts each skeleton's root joint first: the error of the body's shape
  and posture without the error of where the body is.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ros2_radar_pose.body.joint_sets import JointSet, by_name

AXES = ("x", "y", "z")
_CM = 100.0


def scored_frames(pred, truth, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Check the inputs and keep the scored frames: pred, truth (T', J, 3) float64.

    Raises ValueError for shapes that differ or are not (T, J, 3), a mask that is not (T,) bool,
    no frame to score, or a non-finite value in a scored frame (frames left out by the mask may
    hold NaN: a frame without ground truth is the usual reason to leave it out).
    """
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} differ in shape")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"joints must be (T, J, 3), got {pred.shape}")
    if pred.shape[0] == 0 or pred.shape[1] == 0:
        raise ValueError(f"nothing to score: {pred.shape[0]} frames of {pred.shape[1]} joints")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != pred.shape[:1]:
            raise ValueError(f"mask must be ({pred.shape[0]},) bool, got {mask.shape} {mask.dtype}")
        if not mask.any():
            raise ValueError(f"the mask selects none of the {len(mask)} frames")
        pred, truth = pred[mask], truth[mask]
    for what, joints in (("truth", truth), ("pred", pred)):
        bad = int((~np.isfinite(joints)).any(axis=(1, 2)).sum())
        if bad:
            raise ValueError(f"{what} has NaN or inf in {bad} of the {len(joints)} scored frames; "
                             "leave such frames out with the mask")
    return pred, truth


def mae_per_axis(pred, truth, mask=None) -> np.ndarray:
    """Mean absolute error of x, y and z over the scored frames and all joints: (3,) metres."""
    pred, truth = scored_frames(pred, truth, mask)
    return np.abs(pred - truth).mean(axis=(0, 1))


def mae(pred, truth, mask=None) -> float:
    """MARS's headline MAE: the mean of ``mae_per_axis``, metres."""
    return float(mae_per_axis(pred, truth, mask).mean())


def per_joint_mpjpe(pred, truth, mask=None) -> np.ndarray:
    """Mean Euclidean error of each joint over the scored frames: (J,) metres."""
    pred, truth = scored_frames(pred, truth, mask)
    return np.linalg.norm(pred - truth, axis=-1).mean(axis=0)


def mpjpe(pred, truth, mask=None) -> float:
    """Mean per-joint position error over the scored frames and all joints, metres."""
    return float(per_joint_mpjpe(pred, truth, mask).mean())


def root_relative_mpjpe(pred, truth, root: int = 0, mask=None) -> float:
    """MPJPE after moving joint ``root`` of each skeleton to the origin, metres."""
    pred, truth = scored_frames(pred, truth, mask)
    if not 0 <= root < pred.shape[1]:
        raise ValueError(f"root joint {root} is not one of the {pred.shape[1]} joints")
    return mpjpe(pred - pred[:, root:root + 1], truth - truth[:, root:root + 1])


def procrustes_align(pred, truth) -> np.ndarray:
    """Each frame of ``pred`` (T, J, 3) moved onto ``truth`` (T, J, 3) by its least-squares
    similarity transform (s R pred + t, R a proper rotation): (T, J, 3)."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    mean_pred, mean_truth = pred.mean(axis=1, keepdims=True), truth.mean(axis=1, keepdims=True)
    x, y = pred - mean_pred, truth - mean_truth
    u, sigma, vt = np.linalg.svd(np.einsum("tji,tjk->tik", x, y))      # H = X^T Y = U S V^T
    # R = V diag(1, 1, d) U^T with d = det(V U^T): without d a mirror image would fit perfectly.
    d = np.sign(np.linalg.det(np.einsum("tji,tkj->tik", vt, u)))
    d[d == 0] = 1.0
    flip = np.ones_like(sigma)
    flip[:, 2] = d
    rotation = np.einsum("tji,tj,tkj->tik", vt, flip, u)
    spread = (x ** 2).sum(axis=(1, 2))
    # A prediction collapsed to one point has no rotation or scale: it aligns to the truth's centroid.
    scale = np.where(spread > 0, (sigma * flip).sum(axis=1) / np.where(spread > 0, spread, 1.0), 0.0)
    return scale[:, None, None] * np.einsum("tik,tjk->tji", rotation, x) + mean_truth


def pa_mpjpe(pred, truth, mask=None) -> float:
    """MPJPE after per-frame similarity Procrustes alignment of pred to truth, metres."""
    pred, truth = scored_frames(pred, truth, mask)
    return mpjpe(procrustes_align(pred, truth), truth)


@dataclass(frozen=True)
class Scores:
    """The accuracy of one evaluation, in metres (``to_json_dict`` and ``format_table`` say cm)."""

    joint_set: str
    joint_names: tuple[str, ...]
    root_joint: str
    frames: int                          # frames scored
    frames_total: int                    # frames given, scored or not
    mae_xyz_m: tuple[float, float, float]
    mae_m: float
    mpjpe_m: float
    pa_mpjpe_m: float
    root_relative_mpjpe_m: float
    per_joint_mpjpe_m: tuple[float, ...]

    def to_json_dict(self) -> dict:
        """JSON-ready scores in centimetres (rounded to 0.001 cm)."""
        def cm(value: float) -> float:
            return round(float(value) * _CM, 3)
        return {
            "joint_set": self.joint_set,
            "frames": self.frames,
            "frames_total": self.frames_total,
            "mae_cm": {**{axis: cm(v) for axis, v in zip(AXES, self.mae_xyz_m)}, "mean": cm(self.mae_m)},
            "mpjpe_cm": cm(self.mpjpe_m),
            "pa_mpjpe_cm": cm(self.pa_mpjpe_m),
            "root_relative_mpjpe_cm": cm(self.root_relative_mpjpe_m),
            "root_joint": self.root_joint,
            "per_joint_mpjpe_cm": {n: cm(v) for n, v in zip(self.joint_names, self.per_joint_mpjpe_m)},
        }

    def format_table(self, joint_names: Sequence[str] | None = None, sort_by_error: bool = False) -> str:
        """A plain-text table: the summary in cm, then MPJPE per joint (joint order, or worst
        first), each with a bar scaled to the worst joint."""
        names = tuple(joint_names) if joint_names is not None else self.joint_names
        if len(names) != len(self.per_joint_mpjpe_m):
            raise ValueError(f"{len(names)} joint names for {len(self.per_joint_mpjpe_m)} joints")
        x, y, z = (v * _CM for v in self.mae_xyz_m)
        lines = [
            f"{self.joint_set}: {self.frames} of {self.frames_total} frames scored",
            f"  MAE        {self.mae_m * _CM:7.2f} cm   (x {x:.2f}, y {y:.2f}, z {z:.2f})",
            f"  MPJPE      {self.mpjpe_m * _CM:7.2f} cm",
            f"  PA-MPJPE   {self.pa_mpjpe_m * _CM:7.2f} cm",
            f"  root-rel.  {self.root_relative_mpjpe_m * _CM:7.2f} cm   (relative to {self.root_joint})",
            "",
            "  MPJPE per joint" + (", worst first" if sort_by_error else "") + " [cm]",
        ]
        errors = np.asarray(self.per_joint_mpjpe_m) * _CM
        order = np.argsort(-errors, kind="stable") if sort_by_error else range(len(errors))
        width, worst = max(map(len, names)), max(float(errors.max()), 1e-12)
        for j in order:
            bar = "#" * int(round(20 * errors[j] / worst))
            lines.append(f"  {names[j]:<{width}} {errors[j]:7.2f}  {bar}")
        return "\n".join(lines)


def score(pred, truth, joint_set: JointSet | str, mask=None) -> Scores:
    """All metrics of ``pred`` against ``truth`` (T, J, 3) metres, J the joints of ``joint_set``,
    over the frames ``mask`` (T,) bool selects (all when None)."""
    joint_set = by_name(joint_set)
    selected_pred, selected_truth = scored_frames(pred, truth, mask)
    if selected_pred.shape[1] != len(joint_set):
        raise ValueError(f"{joint_set.name} has {len(joint_set)} joints, the poses {selected_pred.shape[1]}")
    root = joint_set.parents.index(-1)
    axes = mae_per_axis(selected_pred, selected_truth)
    return Scores(
        joint_set=joint_set.name,
        joint_names=joint_set.names,
        root_joint=joint_set.names[root],
        frames=len(selected_pred),
        frames_total=int(np.shape(pred)[0]),
        mae_xyz_m=(float(axes[0]), float(axes[1]), float(axes[2])),
        mae_m=float(axes.mean()),
        mpjpe_m=mpjpe(selected_pred, selected_truth),
        pa_mpjpe_m=pa_mpjpe(selected_pred, selected_truth),
        root_relative_mpjpe_m=root_relative_mpjpe(selected_pred, selected_truth, root),
        per_joint_mpjpe_m=tuple(float(v) for v in per_joint_mpjpe(selected_pred, selected_truth)),
    )


def orientation_errors_deg(pred_quats, truth_quats) -> np.ndarray:
    """Mean geodesic angle (J,) in degrees between predicted and true orientations, (T, J, 4)
    quaternions (x, y, z, w; either sign), over the frames whose truth is finite."""
    pred, truth = np.asarray(pred_quats, dtype=np.float64), np.asarray(truth_quats, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[2] != 4:
        raise ValueError(f"orientations must both be (T, J, 4), got {pred.shape} and {truth.shape}")
    known = np.isfinite(truth).all(axis=(1, 2))
    if not known.any():
        raise ValueError("no frame has finite true orientations")
    pred = pred[known] / np.linalg.norm(pred[known], axis=-1, keepdims=True)
    truth = truth[known] / np.linalg.norm(truth[known], axis=-1, keepdims=True)
    cos_half = np.clip(np.abs((pred * truth).sum(-1)), 0.0, 1.0)
    return np.degrees(2.0 * np.arccos(cos_half)).mean(axis=0)
