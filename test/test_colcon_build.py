"""The package builds with colcon as on a robot, and what it installs runs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_colcon_build_installs_nodes_launch_and_config(tmp_path):
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    source = tmp_path / "src" / "ros2_radar_pose"
    for name in tracked:     # what a clean clone holds, nothing from the working tree besides
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "colcon", "build", "--base-paths", "src"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    # tools/tf2_msgs (for PyPI-based development only) is never built on a robot.
    assert sorted(p.name for p in (tmp_path / "install").iterdir() if p.is_dir()) == ["ros2_radar_pose"]

    install = tmp_path / "install" / "ros2_radar_pose"
    share = install / "share" / "ros2_radar_pose"
    for relative in ["package.xml", "launch/radar_pose.launch.xml", "config/radar_pose.yaml"]:
        assert (share / relative).is_file(), relative
    assert (install / "share/ament_index/resource_index/packages/ros2_radar_pose").is_file()
    for script in ["radar_ingest", "radar-pose"]:      # where `ros2 run` looks
        assert os.access(install / "lib" / "ros2_radar_pose" / script, os.X_OK), script

    # The installed node runs from the install space (not the source tree) and finds its share.
    site = next(install.glob("lib/python*/site-packages"))
    ament = f"{install}:{os.environ.get('AMENT_PREFIX_PATH', '')}"
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=ament)
    probe = ("import ros2_radar_pose, ros2_radar_pose.resources as r; print(ros2_radar_pose.__file__); "
             "print(r.share_file('config/radar_pose.yaml'))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    module_file, config = result.stdout.split()
    assert module_file.startswith(str(site)) and config == str(share / "config/radar_pose.yaml")
    run = subprocess.run([sys.executable, str(install / "lib/ros2_radar_pose/radar_ingest"), "--ros-args",
                          "-p", "source:=carrier_pigeon"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "'source' must be 'topic' or 'uart'" in run.stdout + run.stderr
