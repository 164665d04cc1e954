"""Statistics of radar clouds around the people they show, and distances between two such summaries.

``cloud_statistics`` summarises a recording: each cloud (N_t, 5) is paired with the skeleton of
the person it should show, in the same frame (the radar's, with the sensor at the origin). The
raw samples are kept, so ``compare`` can set a simulated recording against a real one.

Statistics, with their units (per-point statistics pool the points of all frames, so frames
with more points weigh more):

=================  ======  ==================================================================
points_per_frame   points  points in each frame, empty frames included
empty_frame        1       1 for a frame without points, else 0 (mean: share of empty frames)
bone_distance      m       distance from a point to the nearest bone segment (joint to parent)
offset_depth       m       point x minus the skeleton root's x (root: the pelvis)
offset_lateral     m       point y minus the root's y
offset_height      m       point z minus the root's z
velocity           m/s     radial (Doppler) velocity
static_point       1       1 when abs(velocity) < ``static_speed``, else 0
intensity          dB      the cloud's intensity column
range              m       distance from the sensor
azimuth            rad     atan2(y, x), positive to the left
elevation          rad     atan2(z, hypot(x, y)), positive up
=================  ======  ==================================================================

Distances (``compare``), per statistic, between the reference sample (the real data) and the
other one (the simulation):

- ``w1``: the Wasserstein-1 (earth mover's) distance between the two empirical distributions,
  in the statistic's unit: how far, on average, mass must move to turn one into the other. A
  distribution shifted by d has W1 = d. For the 0/1 statistics it is the difference of shares.
- ``w1_scaled``: ``w1 / scale``, unitless. The scale is the reference's interquartile range, or
  its standard deviation where the IQR is 0, or 1 unit where both are 0. For the 0/1 statistics
  it is 1, so their scaled distance is the difference of shares itself.
- ``ks``: the two-sample Kolmogorov-Smirnov statistic (largest gap between the CDFs, 0 to 1).

The overall score (``overall_score``) is the mean ``w1_scaled`` over all statistics: 0 for
identical samples, about 1 when distributions sit one reference IQR apart. It is None when a
statistic has no sample on one side (a side without a single point): per-point statistics are
then undefined, and ``Summary`` fields and distances are None rather than NaN.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ros2_radar_pose.radar.points import INTENSITY, VELOCITY, XYZ, X, Y, Z, as_cloud

# (name, unit, is a 0/1 indicator)
STATISTICS: tuple[tuple[str, str, bool], ...] = (
    ("points_per_frame", "points", False),
    ("empty_frame", "1", True),
    ("bone_distance", "m", False),
    ("offset_depth", "m", False),
    ("offset_lateral", "m", False),
    ("offset_height", "m", False),
    ("velocity", "m/s", False),
    ("static_point", "1", True),
    ("intensity", "dB", False),
    ("range", "m", False),
    ("azimuth", "rad", False),
    ("elevation", "rad", False),
)
UNITS = {name: unit for name, unit, _ in STATISTICS}
INDICATORS = frozenset(name for name, _, indicator in STATISTICS if indicator)
DEFAULT_STATIC_SPEED = 0.1  # m/s: below MARS's Doppler step (0.356 m/s), above simulator jitter
_POINT_CHUNK = 8192  # points per block of the bone-distance computation (bounds its memory)


@dataclass(frozen=True, eq=False)
class CloudStatistics:
    """Raw samples of every statistic (``STATISTICS``), each a 1-D float64 array."""

    samples: dict[str, np.ndarray]
    n_frames: int
    n_points: int

    @classmethod
    def concatenate(cls, parts: Sequence[CloudStatistics]) -> CloudStatistics:
        """The statistics of several recordings pooled, as if they were one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        samples = {name: np.concatenate([p.samples[name] for p in parts]) for name in parts[0].samples}
        return cls(samples, sum(p.n_frames for p in parts), sum(p.n_points for p in parts))


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation and quantiles of one sample (all None when it is empty)."""

    n: int
    mean: float | None
    std: float | None
    p5: float | None
    p25: float | None
    median: float | None
    p75: float | None
    p95: float | None

    @classmethod
    def of(cls, sample: np.ndarray) -> Summary:
        if not len(sample):
            return cls(0, None, None, None, None, None, None, None)
        p5, p25, median, p75, p95 = (float(q) for q in np.percentile(sample, [5, 25, 50, 75, 95]))
        return cls(len(sample), float(np.mean(sample)), float(np.std(sample)), p5, p25, median, p75, p95)


@dataclass(frozen=True)
class Comparison:
    """One statistic on both sides and how far apart they are (module docstring: the distances)."""

    name: str
    unit: str
    reference: Summary
    other: Summary
    w1: float | None
    scale: float | None
    w1_scaled: float | None
    ks: float | None


def distance_to_bones(points: np.ndarray, skeletons: np.ndarray, parents: Sequence[int],
                      frame_index: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest bone (the segment from a joint to its parent).

    ``points`` (N, 3); ``skeletons`` (T, J, 3); ``frame_index`` (N,) the skeleton of each point.
    Returns (N,) float64 metres. A skeleton of one joint has no bone: the distance is to the joint.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    skeletons = np.asarray(skeletons, dtype=np.float64)
    frame_index = np.asarray(frame_index, dtype=np.int64)
    children = np.array([j for j, p in enumerate(parents) if p >= 0] or [0])
    ancestors = np.array([parents[j] if parents[j] >= 0 else j for j in children])
    out = np.empty(len(points))
    for start in range(0, len(points), _POINT_CHUNK):
        block = slice(start, start + _POINT_CHUNK)
        p = points[block, None, :]                       # (n, 1, 3)
        a = skeletons[frame_index[block]][:, children]   # (n, B, 3)
        b = skeletons[frame_index[block]][:, ancestors]
        ab = b - a
        length2 = np.einsum("nbk,nbk->nb", ab, ab)
        along = np.einsum("nbk,nbk->nb", p - a, ab) / np.where(length2 > 0, length2, 1.0)
        nearest = a + np.clip(along, 0.0, 1.0)[..., None] * ab
        out[block] = np.sqrt(np.min(np.sum((p - nearest) ** 2, axis=-1), axis=1))
    return out


def cloud_statistics(clouds: Sequence[np.ndarray], skeletons: np.ndarray, parents: Sequence[int],
                     static_speed: float = DEFAULT_STATIC_SPEED) -> CloudStatistics:
    """Samples of every statistic of ``clouds`` around ``skeletons`` (module docstring).

    ``clouds``: T clouds (N_t, 5) x, y, z, velocity, intensity in the sensor frame (empty clouds
    allowed, all of them too); ``skeletons``: (T, J, 3) the person each cloud shows, same frame;
    ``parents``: (J,) each joint's parent, -1 at the root (offsets are taken from the root).
    Raises ValueError on mismatched lengths or shapes and on non-finite values.
    """
    skeletons = np.asarray(skeletons, dtype=np.float64)
    if skeletons.ndim != 3 or skeletons.shape[2] != 3:
        raise ValueError(f"skeletons have shape (T, J, 3), got {skeletons.shape}")
    n_frames, n_joints = skeletons.shape[:2]
    if len(clouds) != n_frames:
        raise ValueError(f"{len(clouds)} clouds for {n_frames} skeletons: one skeleton per cloud")
    parents = tuple(int(p) for p in parents)
    if len(parents) != n_joints or parents.count(-1) != 1 or not all(-1 <= p < n_joints for p in parents):
        raise ValueError(f"parents must give one parent index per joint ({n_joints}) and one root (-1), "
                         f"got {parents}")
    if not np.isfinite(skeletons).all():
        frame = int(np.flatnonzero(~np.isfinite(skeletons).all(axis=(1, 2)))[0])
        raise ValueError(f"skeleton {frame} has a non-finite joint position")

    clouds = [as_cloud(cloud) for cloud in clouds]
    counts = np.array([len(cloud) for cloud in clouds], dtype=np.int64)
    points = np.concatenate(clouds).astype(np.float64) if n_frames else np.zeros((0, 5))
    if not np.isfinite(points).all():
        frame = int(np.flatnonzero([not np.isfinite(cloud).all() for cloud in clouds])[0])
        raise ValueError(f"cloud {frame} has a non-finite value")
    frame_index = np.repeat(np.arange(n_frames), counts)

    xyz = points[:, XYZ]
    offsets = xyz - skeletons[frame_index, parents.index(-1)]
    samples = {
        "points_per_frame": counts.astype(np.float64),
        "empty_frame": (counts == 0).astype(np.float64),
        "bone_distance": distance_to_bones(xyz, skeletons, parents, frame_index),
        "offset_depth": offsets[:, X],
        "offset_lateral": offsets[:, Y],
        "offset_height": offsets[:, Z],
        "velocity": points[:, VELOCITY],
        "static_point": (np.abs(points[:, VELOCITY]) < static_speed).astype(np.float64),
        "intensity": points[:, INTENSITY],
        "range": np.linalg.norm(xyz, axis=1),
        "azimuth": np.arctan2(xyz[:, Y], xyz[:, X]),
        "elevation": np.arctan2(xyz[:, Z], np.hypot(xyz[:, X], xyz[:, Y])),
    }
    return CloudStatistics(samples, n_frames, int(counts.sum()))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    at = np.concatenate([a, b])
    gap = np.searchsorted(a, at, side="right") / len(a) - np.searchsorted(b, at, side="right") / len(b)
    return float(np.max(np.abs(gap)))


def _scale(name: str, reference: np.ndarray) -> float:
    if name in INDICATORS:
        return 1.0
    q25, q75 = np.percentile(reference, [25, 75])
    for spread in (q75 - q25, np.std(reference)):
        if spread > 0:
            return float(spread)
    return 1.0


def compare(reference: CloudStatistics, other: CloudStatistics) -> dict[str, Comparison]:
    """Per statistic: both summaries, W1 (statistic's unit), W1 / reference scale, and KS.

    The distances are None for a statistic with no sample on a side (see the module docstring).
    """
    missing = set(reference.samples) ^ set(other.samples)
    if missing:
        raise ValueError(f"the two statistics do not hold the same samples: {sorted(missing)}")
    result = {}
    for name, ref in reference.samples.items():
        oth = other.samples[name]
        w1 = scale = scaled = ks = None
        if len(ref) and len(oth):
            w1 = float(stats.wasserstein_distance(ref, oth))
            scale = _scale(name, ref)
            scaled = w1 / scale
            ks = ks_statistic(ref, oth)
        result[name] = Comparison(name, UNITS.get(name, ""), Summary.of(ref), Summary.of(oth),
                                  w1, scale, scaled, ks)
    return result


def overall_score(comparisons: dict[str, Comparison]) -> float | None:
    """Mean ``w1_scaled`` over the statistics; None if any of them could not be compared."""
    scaled = [c.w1_scaled for c in comparisons.values()]
    if not scaled or any(s is None for s in scaled):
        return None
    return float(np.mean(scaled))


def to_json_dict(reference_name: str, reference: CloudStatistics, other_name: str,
                 other: CloudStatistics) -> dict:
    """A JSON-ready dict of the comparison (``json.dumps`` gives one line): names, frame and point
    counts, the overall score and, per statistic, both summaries and the distances."""
    comparisons = compare(reference, other)
    return {
        "reference": {"name": reference_name, "frames": reference.n_frames, "points": reference.n_points},
        "other": {"name": other_name, "frames": other.n_frames, "points": other.n_points},
        "score": overall_score(comparisons),
        "distance": ("score = mean over statistics of W1 / scale; scale = reference IQR (its std where "
                     "the IQR is 0, 1 unit where both are; 1 for 0/1 statistics)"),
        "statistics": {name: asdict(c) for name, c in comparisons.items()},
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    value += 0.0  # -0.0 prints as 0.000
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.3g}" if abs(value) >= 100 else f"{value:.3f}"


def _side(summary: Summary) -> list[str]:
    if summary.mean is None:
        return ["-", "-", "-"]
    return [f"{_number(summary.mean)} ± {_number(summary.std)}", _number(summary.median),
            f"{_number(summary.p5)} .. {_number(summary.p95)}"]


def format_side_by_side(reference_name: str, reference: CloudStatistics, other_name: str,
                        other: CloudStatistics) -> str:
    """A text table for a terminal: one row per statistic with each side's mean ± std, median and
    p5 .. p95, then W1, W1 / scale and KS; the overall score on the last line."""
    comparisons = compare(reference, other)
    header = ["statistic", "unit",
              f"{reference_name}: mean ± std", "median", "p5 .. p95",
              f"{other_name}: mean ± std", "median", "p5 .. p95",
              "W1", "W1/scale", "KS"]
    rows = [header]
    for c in comparisons.values():
        rows.append([c.name, c.unit, *_side(c.reference), *_side(c.other),
                     _number(c.w1), _number(c.w1_scaled), _number(c.ks)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    score = overall_score(comparisons)
    lines.append(f"frames {reference.n_frames} / {other.n_frames}, points {reference.n_points} / "
                 f"{other.n_points}; score (mean W1/scale, scale = reference IQR, 1 for 0/1 statistics): "
                 f"{'-' if score is None else f'{score:.3f}'}")
    return "\n".join(lines)
