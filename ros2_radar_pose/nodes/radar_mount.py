"""radar_mount: the radar's mount on /tf_static (``world`` -> ``radar_link``), for RViz and physics'
floor, where tf2_ros's static_transform_publisher is not installed (``radar-pose run --publish-mount``;
the launch file uses tf2_ros).

Parameters: ``parent_frame`` (world, floor at z = 0), ``child_frame`` (the radar frame),
``translation`` (m) and ``rpy`` (roll, pitch, yaw in rad, fixed axes x-y-z, as
static_transform_publisher takes them). Published once, latched (reliable, transient local).
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from ros2_radar_pose import topics
from ros2_radar_pose.ros.params import ParameterError, declare, declare_vector
from ros2_radar_pose.ros.qos import TF_STATIC
from ros2_radar_pose.ros.run import spin_node
from ros2_radar_pose.ros.skeleton import transform_stamped


class RadarMountNode(Node):
    def __init__(self, **node_options):
        super().__init__("radar_mount", **node_options)
        param = lambda name, default, description="": declare(self, name, default, description)  # noqa: E731
        parent = param("parent_frame", topics.WORLD_FRAME, "the fixed frame, floor at z = 0")
        child = param("child_frame", topics.RADAR_FRAME, "the radar's frame")
        translation = declare_vector(self, "translation", [0.0, 0.0, 1.0], "the radar's position in parent_frame, m")
        rpy = declare_vector(self, "rpy", [0.0, 0.0, 0.0], "the radar's roll, pitch, yaw in parent_frame, rad")
        if not np.isfinite([*translation, *rpy]).all():
            raise ParameterError(f"parameters 'translation' and 'rpy' must be finite, got {translation} and {rpy}")
        quaternion = Rotation.from_euler("xyz", rpy).as_quat()                  # x, y, z, w
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=parent)
        self.mount = transform_stamped(header, child, translation, quaternion)
        self.static = self.create_publisher(TFMessage, topics.TF_STATIC, TF_STATIC)
        self.static.publish(TFMessage(transforms=[self.mount]))
        self.get_logger().info(f"{parent} -> {child} on {topics.TF_STATIC}: xyz {list(translation)} m, "
                               f"rpy {list(rpy)} rad")


def main(args=None) -> None:
    spin_node(RadarMountNode, "radar_mount", args)


if __name__ == "__main__":
    main()
