"""The 1€ filter (Casiez, Roussel and Vogel, CHI 2012), per joint: smooths a still joint hard and a
fast one little, so a noisy estimate's jitter goes without the lag a fixed smoothing puts on a
swinging foot (at 4 m/s, a 70 ms time constant trails it by 28 cm)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff_hz: float = 1.0       # cutoff of a still joint (lower: smoother)
    beta: float = 1.0                # cutoff added per m/s of the joint's speed (higher: less lag)
    speed_cutoff_hz: float = 2.0     # cutoff of the speed estimate

    def __post_init__(self):
        values = (self.min_cutoff_hz, self.beta, self.speed_cutoff_hz)
        if not all(math.isfinite(v) for v in values) or self.min_cutoff_hz <= 0 or self.beta < 0 \
                or self.speed_cutoff_hz <= 0:
            raise ValueError(f"1€ filter: cutoffs must be > 0 and beta >= 0, got {values}")


def _alpha(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters (J, 3) joint positions frame by frame; ``reset`` starts from a given frame."""

    def __init__(self, config: OneEuroConfig | None = None):
        self.config = config or OneEuroConfig()
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def reset(self, positions: np.ndarray) -> np.ndarray:
        self.value, self.speed = positions.copy(), np.zeros(len(positions))
        return self.value

    def __call__(self, positions: np.ndarray, dt: float) -> np.ndarray:
        if self.value is None or not dt > 0:
            return self.reset(positions)
        c = self.config
        raw_speed = np.linalg.norm(positions - self.value, axis=-1) / dt
        self.speed = self.speed + _alpha(c.speed_cutoff_hz, dt) * (raw_speed - self.speed)
        alpha = _alpha(c.min_cutoff_hz + c.beta * self.speed, dt)[:, None]
        self.value = self.value + alpha * (positions - self.value)
        return self.value
