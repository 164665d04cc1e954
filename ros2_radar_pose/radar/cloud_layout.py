"""PointCloud2 point layouts <-> NumPy structured dtypes, and decoding of any PointCloud2-like message.

ROS-free: a "PointCloud2-like" message is anything with PointCloud2's attributes (``height``,
``width``, ``fields`` of objects with ``name, offset, datatype, count``, ``is_bigendian``,
``point_step``, ``row_step``, ``data``), such as an rclpy ``sensor_msgs.msg.PointCloud2`` or a
message deserialised by rosbags from a bag.

Decoding builds one structured dtype from the message's fields (offsets, datatypes, counts,
``point_step`` padding, ``is_bigendian``) and views the data through it with the message's
strides, so rows padded by ``row_step`` and organised clouds (``height > 1``) need no copy and
no per-point Python code. Invalid points (NaN) are kept: dropping them is preprocessing's job.
"""
from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from ros2_radar_pose.radar.fields import FieldMapping, resolve_fields, to_cloud

# sensor_msgs/PointField datatype constants and their NumPy kinds.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
DATATYPE_TO_NUMPY = {INT8: "i1", UINT8: "u1", INT16: "i2", UINT16: "u2",
                     INT32: "i4", UINT32: "u4", FLOAT32: "f4", FLOAT64: "f8"}
NUMPY_TO_DATATYPE = {kind: datatype for datatype, kind in DATATYPE_TO_NUMPY.items()}
_MAX_POINT_STEP = int(np.iinfo(np.intc).max)
MAX_PLANS = 64                  # layouts a CloudDecoder remembers


class PointCloudError(ValueError):
    """A PointCloud2 that cannot be decoded; ``kind`` names the problem for diagnostics."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def fields_to_dtype(fields, point_step: int, is_bigendian: bool) -> np.dtype:
    """The structured dtype of one point: the fields at their offsets, itemsize ``point_step``.

    ``fields`` are PointField-like objects (name, offset, datatype, count); count > 1 gives a
    sub-array field, count 0 is read as 1 (some drivers leave it unset).
    """
    layout = tuple((f.name, f.offset, f.datatype, f.count) for f in fields)
    return _layout_dtype(layout, point_step, bool(is_bigendian))


@lru_cache(maxsize=64)  # a driver sends one layout over and over; building a dtype is slow
def _layout_dtype(layout: tuple, point_step: int, is_bigendian: bool) -> np.dtype:
    order = ">" if is_bigendian else "<"
    # PointCloud2 sizes are uint32, NumPy's dtype sizes a C int: a bigger point_step (or field,
    # which must fit in it) would fail inside NumPy with a bare ValueError.
    if point_step > _MAX_POINT_STEP:
        raise PointCloudError("bad_layout", f"point_step {point_step} is more than the "
                                            f"{_MAX_POINT_STEP} bytes NumPy allows for a point")
    names, formats, offsets = [], [], []
    for name, offset, datatype, count in layout:
        kind = DATATYPE_TO_NUMPY.get(datatype)
        if kind is None:
            raise PointCloudError("unknown_datatype", f"field '{name}' has unknown PointField datatype {datatype}")
        if name in names:
            raise PointCloudError("bad_layout", f"field '{name}' appears twice")
        count = max(int(count), 1)
        size = np.dtype(kind).itemsize * count  # checked before NumPy sees a huge count
        if offset < 0 or offset + size > point_step:
            raise PointCloudError("bad_layout", f"field '{name}' (offset {offset}, {size} bytes) "
                                                f"does not fit in point_step {point_step}")
        fmt = np.dtype(order + kind) if count == 1 else np.dtype((order + kind, (count,)))
        names.append(name)
        formats.append(fmt)
        offsets.append(offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def dtype_to_fields(dtype: np.dtype) -> tuple[list[tuple[str, int, int, int]], bool]:
    """The PointFields of a structured dtype, as (name, offset, datatype, count), and whether
    they are big-endian. All fields must share one byte order."""
    if dtype.names is None:
        raise ValueError(f"a point layout is a structured dtype, got {dtype}")
    fields, orders = [], set()
    for name in dtype.names:
        fmt, offset = dtype.fields[name][:2]
        base, count = (fmt.subdtype[0], int(np.prod(fmt.subdtype[1]))) if fmt.subdtype else (fmt, 1)
        datatype = NUMPY_TO_DATATYPE.get(base.kind + str(base.itemsize))
        if datatype is None:
            raise ValueError(f"field '{name}' has dtype {base}, which PointField cannot express")
        if base.itemsize > 1:
            orders.add(sys.byteorder == "big" if base.byteorder == "=" else base.byteorder == ">")
        fields.append((name, offset, datatype, count))
    if len(orders) > 1:
        raise ValueError("all fields of a PointCloud2 share one byte order")
    return fields, orders.pop() if orders else False


def pointcloud2_to_array(msg, organized: bool = False) -> np.ndarray:
    """Decode a PointCloud2-like message into a structured array with one named field per PointField.

    Returns shape (height * width,), or (height, width) when ``organized``. The result may share
    memory with ``msg.data``. Raises PointCloudError for layouts that cannot be decoded.
    """
    height, width = msg.height, msg.width
    dtype = fields_to_dtype(msg.fields, max(msg.point_step, 1), msg.is_bigendian)
    data = _checked_data(msg)
    if height * width == 0:
        return np.empty((height, width) if organized else (0,), dtype=dtype)
    points = np.ndarray((height, width), dtype=dtype, buffer=data, strides=(msg.row_step, msg.point_step))
    return points if organized else points.reshape(-1)


def _checked_data(msg) -> memoryview:
    """``msg.data`` as bytes, after checking it holds the points its layout describes."""
    height, width, step, row_step = msg.height, msg.width, msg.point_step, msg.row_step
    data = memoryview(msg.data).cast("B")
    if height * width == 0:
        return data
    if step <= 0:
        raise PointCloudError("bad_layout", f"point_step is {step}")
    if row_step < width * step:
        raise PointCloudError("bad_layout", f"row_step {row_step} < width {width} x point_step {step}")
    needed = (height - 1) * row_step + width * step
    if len(data) < needed:
        raise PointCloudError("short_data",
                              f"data holds {len(data)} bytes, the layout needs {needed} "
                              f"({height}x{width} points of {step} bytes, row_step {row_step})")
    return data


class CloudDecoder:
    """A radar driver's PointCloud2 (any layout, any field names) -> (N, 5) float32 cloud.

    ``overrides`` name input fields for output columns (see radar.fields.resolve_fields); the
    field mapping is worked out once per layout. Raises PointCloudError (kind
    ``too_many_points`` above ``max_points``) and FieldMappingError.

    Radar drivers publish little-endian float32 fields at 4-byte offsets, so for those layouts
    the five columns are gathered from the data read as float32 words in one step; any other
    layout goes through the structured-array path.
    """

    def __init__(self, overrides: dict[str, str] | None = None, max_points: int | None = None):
        self.overrides = dict(overrides or {})
        self.max_points = max_points
        # layout -> (mapping, word columns or None, missing output columns)
        self._plans: dict[tuple, tuple[FieldMapping, np.ndarray | None, list[int]]] = {}

    def __call__(self, msg) -> np.ndarray:
        count = msg.height * msg.width
        if self.max_points is not None and count > self.max_points:
            raise PointCloudError("too_many_points", f"{count} points > max_points {self.max_points}")
        layout = (msg.point_step, msg.is_bigendian, tuple((f.name, f.offset, f.datatype, f.count) for f in msg.fields))
        plan = self._plans.get(layout)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:      # a source that keeps changing layout must not grow memory
                self._plans.clear()
            plan = self._plans[layout] = self._plan(msg)
        mapping, words, missing = plan
        if count == 0:  # the plan checked the layout; to_cloud cannot reshape empty sub-array fields
            return np.zeros((0, len(mapping.sources)), dtype=np.float32)
        if words is None or (msg.height > 1 and msg.row_step != msg.width * msg.point_step):
            return to_cloud(pointcloud2_to_array(msg), mapping)
        data = _checked_data(msg)
        words_per_point = np.frombuffer(data, "<f4", count * msg.point_step // 4).reshape(count, -1)
        # take, not [:, words]: fancy indexing on axis 1 returns a column-major array, and a cloud
        # is C-contiguous (every as_cloud downstream would copy it again).
        cloud = np.take(words_per_point, words, axis=1)
        if missing:
            cloud[:, missing] = 0.0
        return cloud

    def _plan(self, msg) -> tuple[FieldMapping, np.ndarray | None, list[int]]:
        dtype = fields_to_dtype(msg.fields, max(msg.point_step, 1), msg.is_bigendian)
        mapping = resolve_fields(dtype.names, self.overrides)
        sources = [dtype.fields[name] if name else None for name in mapping.sources]
        gatherable = msg.point_step % 4 == 0 and all(
            source is None or (source[0] == np.dtype("<f4") and source[1] % 4 == 0) for source in sources)
        if not gatherable:
            return mapping, None, []
        words = np.array([0 if source is None else source[1] // 4 for source in sources])
        return mapping, words, [column for column, source in enumerate(sources) if source is None]


def is_dense(points: np.ndarray) -> bool:
    """True when no point has a non-finite x, y or z (PointCloud2's meaning of is_dense)."""
    names = [n for n in ("x", "y", "z") if n in points.dtype.names]
    return all(bool(np.isfinite(points[n]).all()) for n in names
               if np.issubdtype(points.dtype.fields[n][0], np.floating))
