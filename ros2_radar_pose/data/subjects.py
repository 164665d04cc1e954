"""Subjects for synthetic motion: random body shapes, and the measurements motions are built from.

``random_subject`` draws shape coefficients (β) for a body of a chosen height and a random build,
for any body model (the built-in ``AnthropometricBody`` with 4 β, ``SMPLBody`` with 10): the build
coefficients are drawn first, then β0 is solved so that ``body.height`` hits the drawn height.
``Subject`` holds a shape's rest joints and the lengths a motion needs (leg reach, foot placement,
where the floor is).

The floor: a foot standing flat in its rest orientation touches the floor with its lowest joint
(ankle, ball of the foot or big toe), so a subject stands ``Subject.height`` tall. (With a SMPL
mesh the soles lie a little lower than that joint, about a centimetre.)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.models import BodyModel

# HYBRIK_29 indices, left then right.
HIP, KNEE, ANKLE, FOOT, TOE = (1, 2), (4, 5), (7, 8), (10, 11), (27, 28)
SIDES = ("left", "right")
HEIGHT_RANGE = (1.50, 1.95)       # m, adults from short to tall
BUILD_SPREAD = 0.8                # standard deviation of the other β, in the model's own units


def random_subject(rng: np.random.Generator, body: BodyModel,
                   height_range: tuple[float, float] = HEIGHT_RANGE) -> np.ndarray:
    """Shape coefficients (K,) float32 for ``body``: height uniform in ``height_range`` (metres),
    the other coefficients normal with spread ``BUILD_SPREAD`` (clipped at ±2)."""
    low, high = height_range
    if not 0.5 < low <= high < 2.5:
        raise ValueError(f"height_range must be increasing heights in metres, got {height_range}")
    betas = np.clip(rng.normal(0.0, BUILD_SPREAD, body.num_betas), -2.0, 2.0)
    betas[0] = _solve_first_beta(body, betas, rng.uniform(low, high))
    return betas.astype(np.float32)


def _solve_first_beta(body: BodyModel, betas: np.ndarray, height: float) -> float:
    """β0 in [-5, 5] with ``body.height`` closest to ``height``, the other β held."""
    grid = np.linspace(-5.0, 5.0, 21)
    trial = np.repeat(betas[None], len(grid), axis=0)
    trial[:, 0] = grid
    with torch.no_grad():
        heights = body.height(torch.as_tensor(trial)).double().numpy()
    if np.all(np.diff(heights) > 0) or np.all(np.diff(heights) < 0):
        order = np.argsort(heights)
        beta0 = float(np.interp(height, heights[order], grid[order]))
        for _ in range(2):      # secant refinement: heights are smooth but not exactly linear in β0
            probe = np.stack([betas, betas]).copy()
            probe[:, 0] = [beta0, beta0 + 1e-3]
            with torch.no_grad():
                h0, h1 = body.height(torch.as_tensor(probe)).double().numpy()
            if h1 != h0:
                beta0 = float(np.clip(beta0 + (height - h0) * 1e-3 / (h1 - h0), -5.0, 5.0))
        return beta0
    return float(grid[np.argmin(np.abs(heights - height))])


@dataclass(frozen=True, eq=False)
class Subject:
    """A body shape: ``betas`` (K,) float32 and its rest joints ``rest`` (29, 3) float64, HYBRIK_29
    order, SMPL's canonical frame (x: left, y: up, z: forward), metres."""

    betas: np.ndarray
    rest: np.ndarray

    @classmethod
    def of(cls, body: BodyModel, betas: np.ndarray | None = None) -> Subject:
        """The subject of ``body`` with shape ``betas`` (K,) (the average shape when None)."""
        betas = np.zeros(body.num_betas, np.float32) if betas is None else np.asarray(betas, np.float32)
        if betas.ndim != 1:
            raise ValueError(f"betas must be one subject's shape coefficients (K,), got shape {betas.shape}")
        with torch.no_grad():
            rest = body.rest_joints(torch.as_tensor(betas, dtype=torch.float64)[None])[0].double().numpy()
        if rest.shape != (len(HYBRIK_29), 3) or not np.isfinite(rest).all():
            raise ValueError(f"{type(body).__name__} gave unusable rest joints for betas {betas}")
        return cls(betas, rest)

    @cached_property
    def soles(self) -> np.ndarray:
        """(2,): rest height (y) of each foot's lowest joint: where the floor is under it."""
        return np.array([self.rest[[ANKLE[s], FOOT[s], TOE[s]], 1].min() for s in range(2)])

    @property
    def floor(self) -> float:
        """Rest height (y) of the floor when standing with straight legs (the higher sole: a foot
        whose sole sits lower bends its knee a little)."""
        return float(self.soles.max())

    @property
    def height(self) -> float:
        """Head top over the floor, m."""
        return float(self.rest[HYBRIK_29.index("head_top"), 1] - self.floor)

    @property
    def pelvis_height(self) -> float:
        """Pelvis over the floor standing with straight (rest) legs, m."""
        return float(self.rest[0, 1] - self.floor)

    @property
    def hip_height(self) -> float:
        """Mean hip joint height over the floor standing, m: the leg length of gait formulas."""
        return float(self.rest[list(HIP), 1].mean() - self.floor)

    @property
    def thigh(self) -> float:
        return float(np.linalg.norm(self.rest[list(KNEE)] - self.rest[list(HIP)], axis=1).mean())

    @property
    def shank(self) -> float:
        return float(np.linalg.norm(self.rest[list(ANKLE)] - self.rest[list(KNEE)], axis=1).mean())

    @cached_property
    def ankle_offset(self) -> np.ndarray:
        """(2, 2): each ankle's rest (forward, left) offset from the pelvis, m."""
        offset = self.rest[list(ANKLE)] - self.rest[0]
        return np.stack([offset[:, 2], offset[:, 0]], axis=1)

    @cached_property
    def hip_offset(self) -> np.ndarray:
        """(2, 3): each hip's rest offset from the pelvis, canonical frame."""
        return self.rest[list(HIP)] - self.rest[0]

    @cached_property
    def ball_from_ankle(self) -> np.ndarray:
        """(2, 3): ball of each foot (SMPL ``*_foot``) from its ankle at rest, canonical frame."""
        return self.rest[list(FOOT)] - self.rest[list(ANKLE)]

    @cached_property
    def ball_height(self) -> np.ndarray:
        """(2,): height of each ball of the foot over the floor when the foot stands flat."""
        return self.rest[list(FOOT), 1] - self.soles
