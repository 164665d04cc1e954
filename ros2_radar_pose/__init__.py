"""ros2_radar_pose: privacy-preserving 3D human pose from a single mmWave radar.

The algorithms live in ROS-free subpackages (``radar``, ...); ``ros`` converts between
messages and arrays, and ``nodes`` holds one thin ROS node per module.
"""

__version__ = "0.1.0"
