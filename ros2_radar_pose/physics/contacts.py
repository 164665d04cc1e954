"""Foot contact from a kinematic estimate: foot height and speed, with hysteresis.

A foot is down when its sole (the lowest of ankle, ball and toe tip, each less its clearance over
the sole when standing flat) is near the floor and the foot moves slowly; it lifts when it rises
clearly above the floor, moves fast, or has left the place where it landed by ``release_distance``
(which lets a quick step go sooner than its smoothed speed would). Two thresholds per quantity
(hysteresis) keep a noisy estimate from flickering between the two. Heights and positions are
smoothed first (an exponential moving average with time constant ``smoothing_s``): the estimate
is noisy, the feet are not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContactConfig:
    down_height: float = 0.08        # m: a foot whose sole is lower than this may be down
    up_height: float = 0.15          # m: a foot whose sole is higher than this is up
    down_speed: float = 0.5          # m/s: a foot slower than this may be down
    up_speed: float = 1.2            # m/s: a foot faster than this is up
    smoothing_s: float = 0.2         # s, time constant of the smoothing of sole height and position
    release_distance: float = 0.15   # m: a planted foot whose estimate moved this far from where it landed is up

    def __post_init__(self):
        if not (0 <= self.down_height <= self.up_height and 0 <= self.down_speed <= self.up_speed
                and self.smoothing_s >= 0 and self.release_distance > 0
                and all(math.isfinite(v) for v in (self.up_height, self.up_speed, self.release_distance))):
            raise ValueError("contact thresholds must be finite with down <= up, smoothing_s >= 0 and "
                             "release_distance > 0")


def sole_heights(feet: np.ndarray, clearance: np.ndarray) -> np.ndarray:
    """(..., 2) height over the floor (z = 0) of each foot's sole, from ``feet`` (..., 2, 3, 3):
    ankle, ball and toe tip of each foot in a z-up floor frame, and ``clearance`` (2, 3): how high
    each of those joints sits over the sole when the foot is flat."""
    return (feet[..., 2] - clearance).min(axis=-1)


class ContactDetector:
    """Per-frame contact state of the two feet (left, right)."""

    def __init__(self, config: ContactConfig | None = None):
        self.config = config or ContactConfig()
        self.reset()

    def reset(self) -> None:
        self.down = np.zeros(2, dtype=bool)
        self.landed = np.zeros((2, 2))
        self._height: np.ndarray | None = None
        self._position: np.ndarray | None = None
        self._stamp: float | None = None

    def update(self, heights: np.ndarray, positions: np.ndarray, stamp: float,
               touching: np.ndarray | None = None) -> np.ndarray:
        """Contact (2,) bool after a frame at ``stamp`` (s): sole ``heights`` (2,) m and horizontal
        foot ``positions`` (2, 2) m; ``touching`` (2,) bool, feet that touch the floor in the
        simulation, land on the height test alone (no waiting for the estimate's speed to settle)."""
        c = self.config
        if self._stamp is None or not stamp > self._stamp:
            self._height, self._position, self._stamp = heights.copy(), positions.copy(), stamp
            self.down = heights < c.down_height
            self.landed = positions.copy()
            return self.down.copy()
        dt = stamp - self._stamp
        keep = math.exp(-dt / c.smoothing_s) if c.smoothing_s > 0 else 0.0
        height = keep * self._height + (1 - keep) * heights
        position = keep * self._position + (1 - keep) * positions
        speed = np.linalg.norm(position - self._position, axis=-1) / dt
        self._height, self._position, self._stamp = height, position, stamp
        lands = (height < c.down_height) & ((speed < c.down_speed) | (
            np.zeros(2, dtype=bool) if touching is None else touching & (speed < c.up_speed)))
        lifts = ((height > c.up_height) | (speed > c.up_speed)
                 | (np.linalg.norm(position - self.landed, axis=-1) > c.release_distance))
        down = np.where(self.down, ~lifts, lands)
        self.landed = np.where((down & ~self.down)[:, None], position, self.landed)
        self.down = down
        return self.down.copy()
