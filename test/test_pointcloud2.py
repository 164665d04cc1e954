"""PointCloud2 <-> NumPy: hand-built layouts, round trips, and an independent per-point decoder."""
import array
import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from bench.reference import read_points
from ros2_radar_pose.radar.points import FIELDS
from ros2_radar_pose.ros.pointcloud2 import (
    PointCloudError,
    array_to_pointcloud2,
    cloud_to_pointcloud2,
    pointcloud2_to_array,
)

F32, F64, I16, U8 = PointField.FLOAT32, PointField.FLOAT64, PointField.INT16, PointField.UINT8
STRUCT = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d"}


def make_msg(fields, point_step, rows, height=1, row_pad=0, bigendian=False):
    """A PointCloud2 whose bytes are written with struct, independently of the code under test.

    ``fields``: (name, offset, datatype, count); ``rows``: per point, a flat tuple of values.
    """
    order = ">" if bigendian else "<"
    width = len(rows) // height
    row_step = width * point_step + row_pad
    data = bytearray(height * row_step)
    for index, values in enumerate(rows):
        base = (index // width) * row_step + (index % width) * point_step
        cursor = 0
        for _, offset, datatype, count in fields:
            fmt = order + STRUCT[datatype] * count
            struct.pack_into(fmt, data, base + offset, *values[cursor:cursor + count])
            cursor += count
    return PointCloud2(height=height, width=width, point_step=point_step, row_step=row_step,
                       is_bigendian=bigendian,
                       fields=[PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields],
                       data=array.array("B", bytes(data)))


def test_ti_mmwave_rospkg_layout():
    # x, y, z at 0/4/8, intensity at 16, velocity at 20, point_step 32 (ti_mmwave_rospkg).
    fields = [("x", 0, F32, 1), ("y", 4, F32, 1), ("z", 8, F32, 1),
              ("intensity", 16, F32, 1), ("velocity", 20, F32, 1)]
    rows = [(1.5, -0.25, 0.75, 12.0, -0.5), (2.0, 0.5, -1.0, 30.0, 1.25)]
    points = pointcloud2_to_array(make_msg(fields, 32, rows))
    assert points.shape == (2,)
    np.testing.assert_array_equal(points["x"], [1.5, 2.0])
    np.testing.assert_array_equal(points["intensity"], [12.0, 30.0])
    np.testing.assert_array_equal(points["velocity"], [-0.5, 1.25])


def test_big_endian_mixed_types_counts_and_padded_rows():
    fields = [("x", 0, F64, 1), ("y", 8, F64, 1), ("z", 16, F64, 1),
              ("ring", 25, U8, 1), ("rgb3", 26, I16, 3)]
    rows = [(float(i), -float(i), 0.5 * i, i, i, -i, 7) for i in range(6)]
    rows[4] = (math.nan,) + rows[4][1:]
    msg = make_msg(fields, 40, rows, height=2, row_pad=5, bigendian=True)
    points = pointcloud2_to_array(msg, organized=True)
    assert points.shape == (2, 3)
    flat = points.reshape(-1)
    np.testing.assert_array_equal(flat["y"], [-float(i) for i in range(6)])
    assert math.isnan(flat["x"][4]) and flat["x"][5] == 5.0
    np.testing.assert_array_equal(flat["ring"], np.arange(6))
    np.testing.assert_array_equal(flat["rgb3"][3], [3, -3, 7])
    assert pointcloud2_to_array(msg).shape == (6,)


def test_cloud_round_trip_and_header():
    cloud = np.random.default_rng(1).normal(size=(17, 5)).astype(np.float32)
    header = Header(frame_id="radar_link")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = cloud_to_pointcloud2(cloud, header)
    assert [f.name for f in msg.fields] == list(FIELDS)
    assert [f.offset for f in msg.fields] == [0, 4, 8, 12, 16]
    assert msg.point_step == 20 and msg.row_step == 340 and msg.is_dense
    assert msg.header.frame_id == "radar_link" and msg.header.stamp.nanosec == 345
    back = pointcloud2_to_array(msg)
    np.testing.assert_array_equal(np.stack([back[n] for n in FIELDS], axis=1), cloud)


def test_nan_points_make_cloud_not_dense():
    cloud = np.ones((3, 5), dtype=np.float32)
    cloud[1, 2] = np.nan
    assert not cloud_to_pointcloud2(cloud).is_dense


def test_structured_round_trip_keeps_padding_and_byte_order():
    dtype = np.dtype({"names": ["x", "y", "z", "t"], "formats": [">f4", ">f4", ">f4", (">u2", (2,))],
                      "offsets": [0, 4, 8, 14], "itemsize": 24})
    points = np.zeros((2, 3), dtype=dtype)
    points["x"] = np.arange(6).reshape(2, 3)
    points["t"][1, 2] = [9, 65535]
    msg = array_to_pointcloud2(points)
    assert msg.is_bigendian and msg.height == 2 and msg.width == 3 and msg.point_step == 24
    assert [(f.name, f.offset, f.count) for f in msg.fields][-1] == ("t", 14, 2)
    back = pointcloud2_to_array(msg, organized=True)
    for name in dtype.names:
        np.testing.assert_array_equal(back[name], points[name])


def test_empty_cloud():
    msg = cloud_to_pointcloud2(np.zeros((0, 5), np.float32))
    assert msg.width == 0 and len(msg.data) == 0
    assert pointcloud2_to_array(msg).shape == (0,)


@pytest.mark.parametrize("change, kind", [
    (dict(data=array.array("B", bytes(30))), "short_data"),
    (dict(fields=[PointField(name="x", offset=0, datatype=9, count=1)]), "unknown_datatype"),
    (dict(fields=[PointField(name="x", offset=18, datatype=F32, count=1)]), "bad_layout"),
    (dict(fields=[PointField(name="x", offset=0, datatype=F32, count=1)] * 2), "bad_layout"),
    (dict(row_step=19), "bad_layout"),
    (dict(point_step=0), "bad_layout"),
])
def test_malformed_clouds_raise_point_cloud_error(change, kind):
    msg = cloud_to_pointcloud2(np.ones((2, 5), np.float32))
    for name, value in change.items():
        setattr(msg, name, value)
    with pytest.raises(PointCloudError) as error:
        pointcloud2_to_array(msg)
    assert error.value.kind == kind


@st.composite
def layouts(draw):
    """A random field layout (gaps, counts, all datatypes), shape, row padding and endianness."""
    fields, offset = [], 0
    for index in range(draw(st.integers(1, 6))):
        datatype = draw(st.integers(1, 8))
        count = draw(st.integers(1, 3))
        offset += draw(st.integers(0, 5))
        fields.append((f"f{index}", offset, datatype, count))
        offset += struct.calcsize("<" + STRUCT[datatype]) * count
    point_step = offset + draw(st.integers(0, 8))
    height, width = draw(st.integers(1, 3)), draw(st.integers(0, 5))
    row_step = width * point_step + draw(st.integers(0, 7))
    data = draw(st.binary(min_size=height * row_step, max_size=height * row_step))
    return PointCloud2(height=height, width=width, point_step=point_step, row_step=row_step,
                       is_bigendian=draw(st.booleans()),
                       fields=[PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields],
                       data=array.array("B", data))


@given(layouts())
def test_vectorised_decoder_matches_per_point_reference(msg):
    points = pointcloud2_to_array(msg)
    expected = list(read_points(msg))
    assert len(points) == len(expected)
    if expected:
        # Integer columns become float64 exactly; random bytes can be signalling NaNs, whose
        # widening raises the "invalid" flag and stays NaN.
        with np.errstate(invalid="ignore"):
            flat = np.concatenate([points[f.name].reshape(len(points), -1).astype(np.float64)
                                   for f in sorted(msg.fields, key=lambda f: f.offset)], axis=1)
        np.testing.assert_array_equal(flat, np.array(expected, dtype=np.float64))


@given(layouts())
def test_encoder_round_trips_any_decoded_layout(msg):
    points = pointcloud2_to_array(msg)
    back = pointcloud2_to_array(array_to_pointcloud2(points))
    assert back.dtype == points.dtype
    assert back.tobytes() == np.ascontiguousarray(points).tobytes()


@given(st.binary(max_size=200), st.integers(0, 12), st.integers(0, 9), st.integers(0, 40),
       st.integers(0, 64), st.integers(0, 4))
def test_random_bytes_and_layouts_give_array_or_point_cloud_error(data, width, datatype, offset,
                                                                  point_step, height):
    msg = PointCloud2(height=height, width=width, point_step=point_step, row_step=width * point_step,
                      fields=[PointField(name="x", offset=offset, datatype=datatype, count=1)],
                      data=array.array("B", data))
    try:
        points = pointcloud2_to_array(msg)
    except PointCloudError:
        return
    assert points.shape == (height * width,)


def test_a_decoder_fed_ever_new_layouts_keeps_a_bounded_memory():
    from ros2_radar_pose.radar.cloud_layout import MAX_PLANS, CloudDecoder

    decoder = CloudDecoder()
    for padding in range(3 * MAX_PLANS):
        layout = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8],
                           "itemsize": 12 + 4 * padding})
        points = np.zeros(2, dtype=layout)
        points["x"] = padding
        cloud = decoder(array_to_pointcloud2(points))
        assert cloud[:, 0].tolist() == [padding, padding]
        assert len(decoder._plans) <= MAX_PLANS
