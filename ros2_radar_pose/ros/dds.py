"""The DDS discovery profile the package's processes start with: config/fastdds.xml.

Fast DDS reads its default profile from an environment variable when a process creates its first
participant, so this must run before ``rclpy.init``. A profile the user chose (either variable set)
is left alone, and so is any other RMW: the package ships a profile for Fast DDS only.
"""
from __future__ import annotations

import os

from ros2_radar_pose.resources import share_file

PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
# Fast DDS 2.x (Humble, Iron, Jazzy) reads only the old name; 3.x (Kilted on) warns on it.
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def use_discovery_profile() -> str | None:
    """Point Fast DDS at the package's profile unless one is set or Fast DDS is not the RMW;
    returns the file it set, else None."""
    if any(os.environ.get(name) for name in PROFILE_VARIABLES):
        return None
    if not os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        return None
    try:
        path = str(share_file("config/fastdds.xml"))
    except FileNotFoundError:
        return None
    old_name = os.environ.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTROS
    os.environ[PROFILE_VARIABLES[1] if old_name else PROFILE_VARIABLES[0]] = path
    return path
