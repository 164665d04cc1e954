"""sensor_msgs/PointCloud2 <-> NumPy structured arrays, vectorised, for any field layout.

Decoding works on any PointCloud2-like object and lives in the ROS-free radar.cloud_layout
(bags decode the same clouds without rclpy); it is re-exported here. This module builds the
rclpy messages.
"""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from ros2_radar_pose.radar.cloud_layout import (  # noqa: F401  (re-exported: the ROS side's API)
    CloudDecoder,
    PointCloudError,
    dtype_to_fields,
    fields_to_dtype,
    is_dense,
    pointcloud2_to_array,
)
from ros2_radar_pose.radar.points import as_cloud, to_structured


def array_to_pointcloud2(points: np.ndarray, header: Header | None = None) -> PointCloud2:
    """Encode a structured array ((N,) or organised (H, W)) as a dense PointCloud2.

    Fields, offsets and ``point_step`` follow the dtype (padding included); byte order follows
    the fields' byte order (all fields must share one).
    """
    points = np.asarray(points)
    if points.dtype.names is None:
        raise ValueError("array_to_pointcloud2 needs a structured array; use cloud_to_pointcloud2 "
                         "for (N, 5) radar clouds")
    if points.ndim not in (1, 2):
        raise ValueError(f"points must have shape (N,) or (H, W), got {points.shape}")
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    layout, is_bigendian = dtype_to_fields(points.dtype)
    fields = [PointField(name=name, offset=offset, datatype=datatype, count=count)
              for name, offset, datatype, count in layout]
    msg = PointCloud2(header=header if header is not None else Header(), height=height, width=width,
                      fields=fields, is_bigendian=is_bigendian,
                      point_step=points.dtype.itemsize, row_step=points.dtype.itemsize * width)
    msg.is_dense = is_dense(points)
    # Assigning bytes to msg.data validates every byte in Python; an array.array is taken as is.
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(points).tobytes())
    msg.data = data
    return msg


def cloud_to_pointcloud2(cloud: np.ndarray, header: Header | None = None) -> PointCloud2:
    """Encode a (N, 5) float32 radar cloud as the float32 x,y,z,velocity,intensity PointCloud2."""
    return array_to_pointcloud2(to_structured(as_cloud(cloud)), header)
