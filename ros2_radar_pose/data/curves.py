"""Smooth functions of continuous time for procedural motion.

Motions are written as functions of time in seconds, never as per-frame recurrences, so that a
motion sampled at 10 and at 30 frames per second is the same motion. Every shape here has bounded
second derivative (bounded joint angular acceleration when it drives an angle) and starts and ends
with zero velocity where it says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ease(u: np.ndarray | float) -> np.ndarray:
    """Minimum-jerk step: 0 for u <= 0, 1 for u >= 1, zero velocity and acceleration at both ends."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return u ** 3 * (10.0 + u * (-15.0 + 6.0 * u))


def ease_integral(u: np.ndarray | float) -> np.ndarray:
    """The integral of ``ease`` from 0 to u: 0 for u <= 0, u - 1/2 for u >= 1 (a ramp that has
    settled), exact in between; the distance covered while a speed eases up to 1."""
    u = np.asarray(u, dtype=np.float64)
    c = np.clip(u, 0.0, 1.0)
    inside = c ** 4 * (2.5 + c * (-3.0 + c))
    return np.where(u > 1.0, u - 0.5, inside)


def ramp(t: np.ndarray, start: float, stop: float) -> np.ndarray:
    """``ease`` from 0 at time ``start`` to 1 at ``stop`` (a step at ``start`` if they coincide)."""
    t = np.asarray(t, dtype=np.float64)
    if stop <= start:
        return (t >= start).astype(np.float64)
    return ease((t - start) / (stop - start))


def window(t: np.ndarray, rise: tuple[float, float], fall: tuple[float, float]) -> np.ndarray:
    """0 before ``rise[0]``, eases up to 1 by ``rise[1]``, holds, eases back to 0 over ``fall``."""
    return ramp(t, *rise) - ramp(t, *fall)


def bump(u: np.ndarray | float) -> np.ndarray:
    """64 u^3 (1 - u)^3 on [0, 1], else 0: peak 1 at u = 1/2, zero velocity and acceleration at the ends."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return 64.0 * (u * (1.0 - u)) ** 3


def lerp(a, b, weight: np.ndarray) -> np.ndarray:
    """a + (b - a) * weight for ``a`` (T, ...) and ``b`` (T, ...) or (...): ``weight`` (T,) scales
    each of the T items."""
    a, b, weight = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), np.asarray(weight)
    return a + (b - a) * weight.reshape(-1, *[1] * (a.ndim - 1))


def smooth_below(values: np.ndarray, radius: int) -> np.ndarray:
    """A smooth curve never above ``values`` (N,): the running minimum over 2 ``radius`` + 1
    samples, averaged with a ``bump``-shaped kernel of the same width (each average only takes
    minima of windows that contain the sample itself, so it stays below it)."""
    if radius < 1:
        return np.asarray(values, dtype=np.float64).copy()
    width = 2 * radius + 1
    low = np.lib.stride_tricks.sliding_window_view(np.pad(values, radius, mode="edge"), width).min(axis=1)
    kernel = bump(np.arange(1, width + 1) / (width + 1))
    return np.convolve(np.pad(low, radius, mode="edge"), kernel / kernel.sum(), mode="valid")


@dataclass(frozen=True)
class SmoothNoise:
    """A sum of sinusoids with random frequencies and phases: slow, smooth, reproducible wander.

    ``draw`` takes every random number up front, so sampling at any times gives the same curve;
    each of the ``channels`` has unit root-mean-square value.
    """

    frequencies: np.ndarray    # (channels, K) Hz
    phases: np.ndarray         # (channels, K) rad
    weights: np.ndarray        # (channels, K)

    @classmethod
    def draw(cls, rng: np.random.Generator, channels: int, band: tuple[float, float], terms: int = 4) -> SmoothNoise:
        frequencies = rng.uniform(band[0], band[1], (channels, terms))
        phases = rng.uniform(0.0, 2 * np.pi, (channels, terms))
        weights = rng.uniform(0.5, 1.0, (channels, terms))
        weights /= np.sqrt((weights ** 2).sum(axis=1, keepdims=True) / 2)   # unit RMS per channel
        return cls(frequencies, phases, weights)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """(T, channels) values at times ``t`` (T,)."""
        t = np.asarray(t, dtype=np.float64)
        angle = 2 * np.pi * t[:, None, None] * self.frequencies + self.phases
        return (self.weights * np.sin(angle)).sum(axis=-1)
