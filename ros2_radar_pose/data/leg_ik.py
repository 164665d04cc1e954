"""Analytic two-bone leg IK: the hip, knee and ankle rotations that put an ankle exactly on its
target with the foot in a given orientation, so a planted foot never slides.

The knee bends about its own x axis only (flexion, as in body/limits.py), and the rest thigh and
shank need not be collinear (SMPL's are not). For a hip-to-ankle distance d the knee angle solves
|u1 + Rx(θ) u2| = d in closed form; the hip rotation then carries the bent leg onto the target
direction, turned about it so the knee points the way the foot is heading (knees track over the
toes).
The ankle takes whatever rotation is left to give the foot its orientation. Vectorised over frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# SMPL's canonical frame (x: left, y: up, z: forward) into REP-103 world axes (x: forward, y: left,
# z: up) for a body heading along world +x.
CANONICAL_TO_WORLD = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_FORWARD = np.array([0.0, 0.0, 1.0])       # canonical forward: where the kneecap and toes point at rest


def rotation_x(angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations by ``angle`` (...) about x."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    return np.stack([one, zero, zero, zero, c, -s, zero, s, c], axis=-1).reshape(*np.shape(angle), 3, 3)


def rotation_z(angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations by ``angle`` (...) about z."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    return np.stack([c, -s, zero, s, c, zero, zero, zero, one], axis=-1).reshape(*np.shape(angle), 3, 3)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _frame(primary: np.ndarray, secondary: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """(T, 3, 3) orthonormal columns: ``primary``, ``secondary`` made orthogonal to it (``fallback``
    where the two are parallel), and their cross product."""
    first = _unit(primary)
    second = secondary - (secondary * first).sum(-1, keepdims=True) * first
    norm = np.linalg.norm(second, axis=-1, keepdims=True)
    if np.any(norm < 1e-6):
        other = fallback - (fallback * first).sum(-1, keepdims=True) * first
        second = np.where(norm < 1e-6, other, second)
        norm = np.linalg.norm(second, axis=-1, keepdims=True)
    second = second / norm
    return np.stack([first, second, np.cross(first, second)], axis=-1)


@dataclass(frozen=True)
class LegChain:
    """One leg's rest bones in the canonical frame: ``thigh`` hip -> knee, ``shank`` knee -> ankle."""

    thigh: np.ndarray
    shank: np.ndarray

    @property
    def _terms(self) -> tuple[float, float, float, float]:
        u1, u2 = self.thigh, self.shank
        # u1 . Rx(θ) u2 = c0 + p cos θ + q sin θ
        c0 = u1[0] * u2[0]
        p = u1[1] * u2[1] + u1[2] * u2[2]
        q = u1[2] * u2[1] - u1[1] * u2[2]
        return c0, p, q, float(u1 @ u1 + u2 @ u2)

    @property
    def reach(self) -> float:
        """The longest hip-to-ankle distance with the knee not hyperextended (θ >= 0)."""
        c0, p, q, squares = self._terms
        phase = np.arctan2(q, p)
        best = max(phase, 0.0)
        return float(np.sqrt(squares + 2 * (c0 + p * np.cos(best) + q * np.sin(best))))

    def knee_angle(self, distance: np.ndarray) -> np.ndarray:
        """Knee flexion (T,) >= 0 giving hip-to-ankle ``distance`` (T,) (straightest leg beyond reach)."""
        c0, p, q, squares = self._terms
        amplitude, phase = np.hypot(p, q), np.arctan2(q, p)
        cos = ((distance ** 2 - squares) / 2 - c0) / amplitude
        return np.maximum(phase + np.arccos(np.clip(cos, -1.0, 1.0)), 0.0)

    def solve(self, pelvis_rotation: np.ndarray, hip: np.ndarray, ankle: np.ndarray,
              foot_rotation: np.ndarray, knee_direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local rotations (T, 3, 3) of hip, knee and ankle.

        ``pelvis_rotation`` (T, 3, 3): the hip's parent's global rotation; ``hip`` (T, 3): the hip
        joint's world position; ``ankle`` (T, 3): the ankle's target; ``foot_rotation`` (T, 3, 3): the
        ankle's target global rotation; ``knee_direction`` (T, 3): where the kneecap should point
        (its part across the leg is used; the body's forward where it has none).
        """
        target = ankle - hip
        knee = self.knee_angle(np.linalg.norm(target, axis=-1))
        knee_rotation = rotation_x(knee)
        bent = self.thigh + knee_rotation @ self.shank                                  # (T, 3), hip frame
        body_forward = pelvis_rotation @ _FORWARD
        world = _frame(target, knee_direction, body_forward)
        local = _frame(bent, np.broadcast_to(_FORWARD, bent.shape), np.broadcast_to([0.0, 1.0, 0.0], bent.shape))
        hip_global = world @ np.swapaxes(local, -1, -2)
        hip_local = np.swapaxes(pelvis_rotation, -1, -2) @ hip_global
        ankle_local = np.swapaxes(hip_global @ knee_rotation, -1, -2) @ foot_rotation
        return hip_local, knee_rotation, ankle_local
