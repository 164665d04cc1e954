"""ros/dds.py: the package's processes start Fast DDS with config/fastdds.xml unless told otherwise."""
import os
import xml.etree.ElementTree as ET

import pytest

from ros2_radar_pose.resources import share_file
from ros2_radar_pose.ros.dds import PROFILE_VARIABLES, use_discovery_profile

PROFILE = share_file("config/fastdds.xml")


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*PROFILE_VARIABLES, "RMW_IMPLEMENTATION", "ROS_DISTRO"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_fast_dds_3_gets_the_new_variable(clean_env):
    assert use_discovery_profile() == str(PROFILE)
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(PROFILE)
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ   # 3.x warns that the old name is deprecated


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_fast_dds_2_distros_get_the_old_variable(clean_env, distro):
    clean_env.setenv("ROS_DISTRO", distro)
    assert use_discovery_profile() == str(PROFILE)
    assert os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(PROFILE)
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ


@pytest.mark.parametrize(("name", "value"), [("FASTDDS_DEFAULT_PROFILES_FILE", "/mine.xml"),
                                             ("FASTRTPS_DEFAULT_PROFILES_FILE", "/mine.xml"),
                                             ("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")])
def test_a_users_profile_or_another_rmw_is_left_alone(clean_env, name, value):
    clean_env.setenv(name, value)
    before = {key: os.environ.get(key) for key in PROFILE_VARIABLES}
    assert use_discovery_profile() is None
    assert {key: os.environ.get(key) for key in PROFILE_VARIABLES} == before


def test_the_profile_is_the_default_participant_profile_with_a_quick_announcement():
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    participant = ET.parse(PROFILE).getroot().find("f:participant", ns)
    assert participant.get("is_default_profile") == "true"
    discovery = participant.find("f:rtps/f:builtin/f:discovery_config", ns)
    seconds = {tag: float(discovery.find(f"f:{tag}/f:sec", ns).text)
               + float(discovery.find(f"f:{tag}/f:nanosec", ns).text) * 1e-9
               for tag in ("leaseAnnouncement", "leaseDuration")}
    assert seconds == {"leaseAnnouncement": 0.25, "leaseDuration": 5.0}
