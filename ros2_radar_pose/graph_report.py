"""The report of a run of the whole graph: accuracy against ground truth, physical plausibility
and latency per stage, as a table (Markdown, JSON) and a picture.

The main job (nodes/main_job.py) fills a ``GraphRun`` from what it received over DDS. Frames are
matched by stamp: every stage carries the radar frame's stamp through. Latencies are the
arrival times, at the listener, of each stage's output minus the arrival of the frame's ground
truth, which the bag player sends beside the radar cloud: they include DDS, not the listener's
own queueing, which is the same for all.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.physics.metrics import CONTACT_HEIGHT, plausibility, sole_depth
from ros2_radar_pose.physics.tracker import FloorFrame
from ros2_radar_pose.train.metrics import pa_mpjpe, per_joint_mpjpe

ESTIMATES = ("student", "refined")           # the student's skeleton, and physics' refinement of it
STAGES = ("ingest", "student", "physics", "end_to_end")
_CM = 100.0


@dataclass
class GraphRun:
    """What a listener saw of the graph, frame by frame (T radar frames, in stamp order):
    ``stamps_s`` (T,); ``truth`` (T, 24, 3) in the radar frame; ``estimates`` name -> (T, 24, 3)
    with NaN where that output never came; ``arrivals`` stage output name ("truth", "cloud",
    "student", "refined", "tf") -> (T,) seconds on one monotonic clock, NaN where missing."""

    stamps_s: np.ndarray
    truth: np.ndarray
    estimates: dict[str, np.ndarray]
    arrivals: dict[str, np.ndarray]

    def latencies_ms(self) -> dict[str, np.ndarray]:
        """Per-stage and end-to-end latency (T,) ms, NaN where a stage's input or output is missing."""
        a = self.arrivals
        return {"ingest": (a["cloud"] - a["truth"]) * 1000, "student": (a["student"] - a["cloud"]) * 1000,
                "physics": (a["refined"] - a["student"]) * 1000, "end_to_end": (a["tf"] - a["truth"]) * 1000}


def _percentiles(values: np.ndarray) -> dict:
    values = values[np.isfinite(values)]
    if not len(values):
        return {"frames": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"frames": int(len(values)), "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2), "max_ms": round(float(values.max()), 2)}


def score_run(run: GraphRun, floor: FloorFrame, clearance: np.ndarray) -> dict:
    """Accuracy (cm) of each estimate on the frames it answered, plausibility (mm; on the frames
    both estimates answered, in the floor frame, with the ground truth's foot contacts) of the
    truth and each estimate, and latency percentiles (ms) per stage."""
    frames = len(run.stamps_s)
    scores: dict = {"frames": frames, "accuracy": {}, "plausibility": {}, "latency": {}}
    for name in ESTIMATES:
        estimate = run.estimates[name]
        answered = np.isfinite(estimate).all(axis=(1, 2)) & np.isfinite(run.truth).all(axis=(1, 2))
        if not answered.any():
            scores["accuracy"][name] = {"frames": 0}
            continue
        per_joint = per_joint_mpjpe(estimate, run.truth, answered) * _CM
        root = np.linalg.norm(estimate[answered, 0] - run.truth[answered, 0], axis=-1) * _CM
        scores["accuracy"][name] = {
            "frames": int(answered.sum()), "mpjpe_cm": round(float(per_joint.mean()), 2),
            "pa_mpjpe_cm": round(pa_mpjpe(estimate, run.truth, answered) * _CM, 2),
            "root_cm": round(float(root.mean()), 2),
            "per_joint_cm": {n: round(float(e), 2) for n, e in zip(SMPL_24.names, per_joint)}}
    both = np.all([np.isfinite(run.estimates[n]).all(axis=(1, 2)) for n in ESTIMATES], axis=0)
    if both.sum() >= 3:
        eye = np.eye(3)
        truth = floor.to_floor(run.truth[both], eye)[0]
        contacts = sole_depth(truth, clearance) < CONTACT_HEIGHT
        scores["plausibility"]["truth"] = plausibility(truth, clearance, contacts).to_json_dict()
        for name in ESTIMATES:
            positions = floor.to_floor(run.estimates[name][both], eye)[0]
            scores["plausibility"][name] = plausibility(positions, clearance, contacts, truth=truth).to_json_dict()
    for stage, values in run.latencies_ms().items():
        scores["latency"][stage] = _percentiles(values)
    return scores


def format_markdown(scores: dict, title: str = "Radar pose graph report") -> str:
    """The scores as Markdown tables."""
    lines = [f"# {title}", "", f"{scores['frames']} radar frames.", "", "## Accuracy against ground truth (cm)", "",
             "| output | frames | MPJPE | PA-MPJPE | root |", "|---|---|---|---|---|"]
    for name, a in scores["accuracy"].items():
        if a["frames"]:
            lines.append(f"| {name} | {a['frames']} | {a['mpjpe_cm']:.1f} | {a['pa_mpjpe_cm']:.1f} "
                         f"| {a['root_cm']:.1f} |")
        else:
            lines.append(f"| {name} | 0 | - | - | - |")
    if scores["plausibility"]:
        lines += ["", "## Physical plausibility (mm; floor from the radar's mount, contacts from the truth)", "",
                  "| sequence | foot skating /frame | penetration mean | penetration max | frames under floor "
                  "| jitter /frame^2 |", "|---|---|---|---|---|---|"]
        for name, p in scores["plausibility"].items():
            lines.append(f"| {name} | {p['skating_mm']:.1f} | {p['penetration_mean_mm']:.1f} | "
                         f"{p['penetration_max_mm']:.1f} | {p['penetration_share'] * 100:.0f} % "
                         f"| {p['jitter_mm']:.1f} |")
    lines += ["", "## Latency (ms, from the radar frame's publication)", "",
              "| stage | frames | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|"]
    for stage, lat in scores["latency"].items():
        if lat["frames"]:
            lines.append(f"| {stage.replace('_', ' ')} | {lat['frames']} | {lat['p50_ms']:.1f} | {lat['p95_ms']:.1f} "
                         f"| {lat['p99_ms']:.1f} | {lat['max_ms']:.1f} |")
        else:
            lines.append(f"| {stage.replace('_', ' ')} | 0 | - | - | - | - |")
    return "\n".join(lines) + "\n"


_COLOURS = {"truth": "0.35", "student": "tab:blue", "refined": "tab:orange"}


def _skeleton(ax, joints: np.ndarray, colour, label: str | None) -> None:
    """Front view as the radar sees it: its right (-y) to the right, up (z) up."""
    for k, (parent, child) in enumerate(SMPL_24.bones):
        ax.plot(-joints[[parent, child], 1], joints[[parent, child], 2], color=colour, linewidth=1.6,
                label=label if k == 0 else None)


def write_report_png(path: str | Path, run: GraphRun, scores: dict, title: str = "") -> Path:
    """Skeletons against the truth at four moments (front view), per-joint error of each estimate,
    root trajectory over time, and a latency histogram per stage."""
    fig = Figure(figsize=(16, 10), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 4)
    answered = np.flatnonzero(np.isfinite(run.estimates["refined"]).all(axis=(1, 2))
                              & np.isfinite(run.truth).all(axis=(1, 2)))
    moments = answered[np.linspace(0, len(answered) - 1, 4).round().astype(int)] if len(answered) else []
    for k, t in enumerate(moments):
        ax = fig.add_subplot(grid[0, k])
        _skeleton(ax, run.truth[t], _COLOURS["truth"], "truth")
        for name in ESTIMATES:
            if np.isfinite(run.estimates[name][t]).all():
                _skeleton(ax, run.estimates[name][t], _COLOURS[name], name)
        ax.set_aspect("equal")
        ax.set_title(f"t = {run.stamps_s[t] - run.stamps_s[0]:.1f} s, {run.truth[t, 0, 0]:.1f} m away "
                     "(as the radar sees)", fontsize=10)
        ax.set_xlabel("right of the radar (-y) [m]")
        if k == 0:
            ax.set_ylabel("z [m]")
            ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)

    ax = fig.add_subplot(grid[1, 0:2])
    width = 0.4
    index = np.arange(len(SMPL_24))
    for k, name in enumerate(ESTIMATES):
        accuracy = scores["accuracy"][name]
        if accuracy["frames"]:
            ax.bar(index + (k - 0.5) * width, list(accuracy["per_joint_cm"].values()), width, color=_COLOURS[name],
                   label=f"{name}: MPJPE {accuracy['mpjpe_cm']:.1f} cm")
    ax.set_xticks(index, SMPL_24.names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("mean error [cm]")
    ax.set_title("Per-joint error against the ground truth")
    ax.legend(fontsize=9)
    ax.grid(axis="y", alpha=0.3)

    ax = fig.add_subplot(grid[1, 2])
    time = run.stamps_s - run.stamps_s[0]
    ax.plot(time, run.truth[:, 0, 0], color=_COLOURS["truth"], label="truth x")
    ax.plot(time, run.truth[:, 0, 2], color=_COLOURS["truth"], linestyle=":", label="truth z")
    for name in ESTIMATES:
        ax.plot(time, run.estimates[name][:, 0, 0], color=_COLOURS[name], linewidth=1.0, label=f"{name} x")
        ax.plot(time, run.estimates[name][:, 0, 2], color=_COLOURS[name], linewidth=1.0, linestyle=":")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("pelvis [m]")
    ax.set_title("Pelvis: distance (x, solid) and height (z, dotted)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = fig.add_subplot(grid[1, 3])
    latencies = run.latencies_ms()
    finite = [v[np.isfinite(v)] for v in latencies.values()]
    top = max((np.percentile(v, 99) for v in finite if len(v)), default=1.0)
    bins = np.linspace(0.0, max(top * 1.2, 1.0), 40)
    for (stage, _), values in zip(latencies.items(), finite):
        if len(values):
            ax.hist(np.clip(values, 0.0, bins[-1]), bins=bins, histtype="step", linewidth=1.5,
                    label=f"{stage.replace('_', ' ')}: p50 {np.median(values):.1f} ms")
    ax.set_xlabel("latency [ms] (last bin: p99 x 1.2 and beyond)")
    ax.set_ylabel("frames")
    ax.set_title("Latency per stage")
    ax.legend(fontsize=8)
    fig.suptitle(title or "Radar pose graph: skeletons, errors and latency", fontsize=13)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_report(directory: str | Path, run: GraphRun, floor: FloorFrame, clearance: np.ndarray,
                 title: str = "Radar pose graph report") -> tuple[dict, Path]:
    """Score ``run`` and write report.md, report.json and report.png into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scores = score_run(run, floor, clearance)
    (directory / "report.md").write_text(format_markdown(scores, title) + "\n![report](report.png)\n")
    (directory / "report.json").write_text(json.dumps(scores, indent=1))
    return scores, write_report_png(directory / "report.png", run, scores, title)
