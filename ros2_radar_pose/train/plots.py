"""One PNG that says how good an evaluation was: per-joint error, MAE per axis, and predicted
against true motion over time.

Drawn on a ``matplotlib.figure.Figure`` with its own Agg canvas, never through pyplot, so no
global figure state is touched: reports can be written from any thread, without a display.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ros2_radar_pose.body.joint_sets import JointSet, by_name
from ros2_radar_pose.train.metrics import AXES, Scores

DPI = 100
SIZE_IN = (15.0, 11.0)
_CM = 100.0
_AXIS_COLOURS = ("tab:red", "tab:green", "tab:blue")


GAP_S = 1.0


def _check(scores: Scores, pred, truth, joint_set: JointSet, stamps_s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pred, truth (T, J, 3) float64 and the time axis (T,) in seconds (frame index without stamps)."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[2] != 3 or len(pred) == 0:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (T, J, 3) with T > 0")
    if pred.shape[1] != len(joint_set):
        raise ValueError(f"{joint_set.name} has {len(joint_set)} joints, the poses {pred.shape[1]}")
    if scores.joint_names != joint_set.names:
        raise ValueError(f"the scores are for {scores.joint_set}, the poses for {joint_set.name}")
    if stamps_s is None:
        return pred, truth, np.arange(len(pred), dtype=np.float64)
    stamps_s = np.asarray(stamps_s, dtype=np.float64)
    if stamps_s.shape != pred.shape[:1] or not np.isfinite(stamps_s).all():
        raise ValueError(f"stamps_s must be ({len(pred)},) finite seconds, got shape {stamps_s.shape}")
    return _without_gaps(pred, truth, stamps_s)


def _without_gaps(pred: np.ndarray, truth: np.ndarray, stamps_s: np.ndarray):
    """Recordings follow each other in a bag with gaps of seconds to hours between them: on the time
    axis a gap takes one frame period, and a NaN row between the recordings breaks the lines."""
    steps = np.diff(stamps_s)
    if not len(steps):
        return pred, truth, stamps_s - stamps_s[0]
    period = float(np.median(steps)) if np.median(steps) > 0 else 1.0
    gaps = np.flatnonzero(steps > max(GAP_S, 5 * period))
    steps[gaps] = period
    time = np.concatenate([[0.0], np.cumsum(steps)])
    breaks = gaps + 1
    return (np.insert(pred, breaks, np.nan, axis=0), np.insert(truth, breaks, np.nan, axis=0),
            np.insert(time, breaks, time[breaks] - period / 2))


def _traced_joints(scores: Scores, joint_set: JointSet) -> list[int]:
    """The wrists, whose height shows arm motion; the worst joint where a set has no wrist."""
    wrists = [j for j, name in enumerate(joint_set.names) if "wrist" in name.lower()]
    return wrists or [int(np.argmax(scores.per_joint_mpjpe_m))]


def _per_joint_panel(ax, scores: Scores, joint_set: JointSet) -> None:
    errors = np.asarray(scores.per_joint_mpjpe_m) * _CM
    rows = np.arange(len(errors))
    ax.bar_label(ax.barh(rows, errors, color="tab:gray"), fmt="%.1f", fontsize=7, padding=2)
    ax.margins(x=0.12)                     # room for the value labels
    ax.axvline(scores.mpjpe_m * _CM, color="black", linestyle=":", label=f"MPJPE {scores.mpjpe_m * _CM:.1f} cm")
    ax.set_yticks(rows, joint_set.names, fontsize=8)
    ax.invert_yaxis()                      # joint order reads top to bottom
    ax.set_xlabel("MPJPE [cm]")
    ax.set_title("Error per joint")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _summary_panel(ax, scores: Scores) -> None:
    labels = [f"MAE {a}" for a in AXES] + ["MAE", "MPJPE", "PA-MPJPE"]
    values = [v * _CM for v in (*scores.mae_xyz_m, scores.mae_m, scores.mpjpe_m, scores.pa_mpjpe_m)]
    bars = ax.bar(labels, values, color=[*_AXIS_COLOURS, "tab:gray", "dimgray", "darkgray"])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_ylabel("cm")
    ax.set_title("Mean absolute error per axis, and MPJPE")
    ax.tick_params(axis="x", labelsize=8)
    ax.margins(y=0.15)                     # room for the value labels
    ax.grid(axis="y", alpha=0.3)


def _style(ax, ylabel: str) -> None:
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def _trace(ax, time, truth, pred, colour: str, ylabel: str) -> None:
    """Truth solid, prediction dashed, in one colour."""
    ax.plot(time, truth, color=colour, linewidth=1.2)
    ax.plot(time, pred, color=colour, linewidth=1.2, linestyle="--")
    _style(ax, ylabel)


def write_report_png(path: str | PathLike, scores: Scores, pred, truth, joint_set: JointSet | str,
                     stamps_s=None, title: str = "") -> Path:
    """Write the report of ``scores`` for ``pred`` and ``truth`` (T, J, 3) metres to ``path``.

    ``stamps_s`` (T,) seconds puts time on the x axis (frame numbers without it). Frames with NaN
    (no ground truth) leave gaps in the traces. Returns the path written.
    """
    joint_set = by_name(joint_set)
    pred, truth, time = _check(scores, pred, truth, joint_set, stamps_s)
    root = joint_set.parents.index(-1)
    traced = _traced_joints(scores, joint_set)

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    outer = fig.add_gridspec(1, 2, width_ratios=(1.0, 1.8))
    left = outer[0].subgridspec(2, 1, height_ratios=(2.6, 1.0))
    _per_joint_panel(fig.add_subplot(left[0]), scores, joint_set)
    _summary_panel(fig.add_subplot(left[1]), scores)

    right = outer[1].subgridspec(5, 1)
    first = fig.add_subplot(right[0])
    axes = [first] + [fig.add_subplot(right[i], sharex=first) for i in range(1, 5)]
    root_name = joint_set.names[root]
    for axis, (ax, colour) in enumerate(zip(axes[:3], _AXIS_COLOURS)):
        _trace(ax, time, truth[:, root, axis], pred[:, root, axis], colour, f"{root_name} {AXES[axis]} [m]")
    axes[0].set_title(f"Root ({root_name}) and {' / '.join(joint_set.names[j] for j in traced)} height over time")
    axes[0].legend(handles=[Line2D([], [], color="black", label="truth"),
                            Line2D([], [], color="black", linestyle="--", label="predicted")],
                   loc="upper right", fontsize=8, ncol=2)
    for j, colour in zip(traced, ("tab:purple", "tab:orange", "tab:brown")):
        _trace(axes[3], time, truth[:, j, 2], pred[:, j, 2], colour, "height z [m]")
        axes[3].plot([], [], color=colour, label=joint_set.names[j])
    axes[3].legend(loc="upper right", fontsize=8, ncol=len(traced))
    per_frame = np.linalg.norm(pred - truth, axis=-1).mean(axis=1) * _CM
    axes[4].plot(time, per_frame, color="black", linewidth=1.0)
    _style(axes[4], "MPJPE per frame [cm]")
    axes[4].set_xlabel(f"time [s] (gaps over {GAP_S:g} s between recordings left out)" if stamps_s is not None
                       else "frame")
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)

    x, y, z = (v * _CM for v in scores.mae_xyz_m)
    headline = (f"MAE {scores.mae_m * _CM:.1f} cm (x {x:.1f}, y {y:.1f}, z {z:.1f})   "
                f"MPJPE {scores.mpjpe_m * _CM:.1f} cm   PA-MPJPE {scores.pa_mpjpe_m * _CM:.1f} cm   "
                f"{scores.joint_set}, {scores.frames} of {scores.frames_total} frames")
    fig.suptitle(f"{title}\n{headline}" if title else headline, fontsize=12)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path
