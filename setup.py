"""ament_python build of ros2_radar_pose (colcon build on a robot; pip install -e . in dev.sh)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ros2_radar_pose"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.xml")),
        # the student the main job runs (tools/train_shipped_student.sh reproduces it)
        (f"share/{PACKAGE}/models", glob("models/*.pt")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.cfg") + glob("config/*.rviz")
         + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    # The BlazePose teacher backend (requirements/teacher.in); everything else runs without it.
    extras_require={"blazepose": ["mediapipe==0.10.14"]},
    zip_safe=True,
    maintainer="ros2_radar_pose maintainers",
    maintainer_email="maintainers@ros2-radar-pose.org",
    description="Privacy-preserving 3D human pose from a single mmWave radar.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "radar-pose = ros2_radar_pose.cli:main",
            "radar_ingest = ros2_radar_pose.nodes.radar_ingest:main",
            "bag_player = ros2_radar_pose.nodes.bag_player:main",
            "student = ros2_radar_pose.nodes.student:main",
            "trainer = ros2_radar_pose.nodes.trainer:main",
            "physics = ros2_radar_pose.nodes.physics:main",
            "teacher = ros2_radar_pose.nodes.teacher:main",
            "radar_mount = ros2_radar_pose.nodes.radar_mount:main",
        ],
    },
)
