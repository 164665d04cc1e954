"""Map the point fields real radar drivers publish onto the shared x,y,z,velocity,intensity cloud.

Drivers disagree on names: ti_mmwave_rospkg publishes x,y,z at offsets 0/4/8, intensity at 16
and velocity at 20 (point_step 32); others call the Doppler velocity ``doppler`` or
``v_doppler_mps`` and the intensity ``snr`` or ``snr_db``; some publish no velocity at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_radar_pose.radar.points import FIELDS

# Accepted names per output column, first match wins.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "x": ("x",),
    "y": ("y",),
    "z": ("z",),
    "velocity": ("velocity", "doppler", "v_doppler_mps", "radial_velocity", "vel", "v"),
    "intensity": ("intensity", "snr", "snr_db", "power", "rcs"),
}
REQUIRED = ("x", "y", "z")

# ti_mmwave_rospkg's PointCloud2 point layout: what a real TI driver publishes on /radar/points.
TI_MMWAVE = np.dtype({"names": ["x", "y", "z", "intensity", "velocity"], "formats": ["<f4"] * 5,
                      "offsets": [0, 4, 8, 16, 20], "itemsize": 32})


class FieldMappingError(ValueError):
    """The input cloud lacks a required field (x, y or z)."""


@dataclass(frozen=True)
class FieldMapping:
    """Which input field feeds each output column (None: the column is filled with 0)."""

    sources: tuple[str | None, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """Output columns with no input field."""
        return tuple(name for name, src in zip(FIELDS, self.sources) if src is None)


def resolve_fields(names, overrides: dict[str, str] | None = None) -> FieldMapping:
    """Choose an input field for each output column.

    ``names``: the input's field names. ``overrides`` maps an output column to an input field
    name chosen by the user (a ROS parameter); an empty string means "use the aliases".
    """
    names = set(names)
    overrides = {k: v for k, v in (overrides or {}).items() if v}
    sources = []
    for column in FIELDS:
        if column in overrides:
            if overrides[column] not in names:
                raise FieldMappingError(f"field '{overrides[column]}' chosen for {column} is not in the "
                                        f"cloud (fields: {', '.join(sorted(names))})")
            sources.append(overrides[column])
            continue
        source = next((alias for alias in DEFAULT_ALIASES[column] if alias in names), None)
        if source is None and column in REQUIRED:
            raise FieldMappingError(f"the cloud has no '{column}' field (fields: "
                                    f"{', '.join(sorted(names)) or 'none'})")
        sources.append(source)
    return FieldMapping(tuple(sources))


def to_cloud(points: np.ndarray, mapping: FieldMapping) -> np.ndarray:
    """Copy the mapped fields of a structured (N,) array into a (N, 5) float32 cloud.

    A sub-array field (PointField count > 1) contributes its first element.
    """
    cloud = np.zeros((points.shape[0], len(FIELDS)), dtype=np.float32)
    for column, source in enumerate(mapping.sources):
        if source is not None:
            values = points[source]
            cloud[:, column] = values if values.ndim == 1 else values.reshape(len(values), -1)[:, 0]
    return cloud
