"""QoS profiles of the package's topics.

Sensor subscriptions are best effort (they accept any publisher, reliable or not); sensor
publications are reliable with a short keep-last history, so that RViz and ``ros2 bag record``
(reliable by default) can subscribe and a slow subscriber costs old frames, never memory.
"""
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

SENSOR_SUBSCRIPTION = qos_profile_sensor_data
SENSOR_PUBLICATION = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
# tf2_ros's own profiles: dynamic TF reliable, volatile, depth 100; static TF transient-local.
TF = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.VOLATILE)
TF_STATIC = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# Status topics a monitor may join late (the trainer's): the last message waits for it.
LATCHED_STATUS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Camera images for the teacher. Most camera drivers (realsense2_camera, usb_cam, zed) publish
# reliable, and a reliable subscription has a lost fragment of a large image resent; over best
# effort a 1 MB image loses a fragment, and with it the whole image, often enough on a busy host
# that none may arrive. A best-effort camera needs "sensor_data" (reliable cannot match it).
IMAGE_SUBSCRIPTIONS = {
    "reliable": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.VOLATILE),
    "sensor_data": SENSOR_SUBSCRIPTION,
}
