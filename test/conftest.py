"""Shared test setup: a private ROS 2 domain per test session and hypothesis profiles."""
import os
import random
import shutil
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# Each session talks on its own DDS domain over loopback, so parallel runs never cross-talk.
# Set before any rclpy import initialises a context; child processes inherit it.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def console_script(name: str) -> str:
    """The installed console script ``name`` of the package (on PATH, or beside this Python)."""
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(path).exists(), f"console script {name} is not installed"
    return path


def start_node(script: str, tmp_path: Path, *params: str, params_file: Path | None = None):
    """The package's console script ``script`` as its own process (a NodeProcess), its output in
    ``tmp_path``/SCRIPT.log; ``params`` are NAME:=VALUE, given after ``params_file``'s."""
    from ros2_radar_pose.processes import NodeProcess

    args = [] if params_file is None else ["--params-file", str(params_file)]
    for param in params:
        args += ["-p", param]
    return NodeProcess("", args, tmp_path / f"{script}.log", command=[console_script(script)])


def running(pid: int) -> bool:
    """Whether process ``pid`` is alive: neither gone nor a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
