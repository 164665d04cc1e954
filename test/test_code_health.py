"""Whole-tree checks: lint, Python 3.10 syntax (ROS 2 Humble), and the house rule."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ros2_radar_pose"
ROS_IMPORT = re.compile(r"^\s*(import|from)\s+(rclpy|\w+_msgs|builtin_interfaces|tf2_ros)\b", re.M)


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def python_3_10() -> str | None:
    """A working Python 3.10 interpreter: on PATH, or one of pyenv's."""
    candidates = [shutil.which("python3.10"), *map(str, Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(python_3_10() is None, reason="no Python 3.10 on this machine")
def test_every_module_parses_on_python_3_10():
    files = [str(p) for p in [*PACKAGE.rglob("*.py"), *ROOT.glob("bench/*.py"), *ROOT.glob("test/*.py")]]
    script = "import sys, ast\nfor f in sys.argv[1:]:\n    ast.parse(open(f).read(), f)\n"
    result = subprocess.run([python_3_10(), "-c", script, *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_core_modules_never_import_ros():
    leaks = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
             if p.parent.name not in ("ros", "nodes") and ROS_IMPORT.search(p.read_text())]
    assert not leaks, f"only ros/ and nodes/ may import ROS: {leaks}"
