"""Launch files: every node is a console script of the package, every file they name exists and
is installed, every substitution refers to something declared."""
import importlib
import os
import re
import xml.etree.ElementTree as ET
from distutils.core import run_setup
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted(ROOT.glob("launch/*.launch.xml"))
SUBSTITUTION = re.compile(r"\$\((\S+)\s*([^)]*)\)")


@pytest.fixture(scope="module")
def setup_kwargs():
    """What setup.py tells setuptools (console scripts, data files), read the way colcon does."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        distribution = run_setup("setup.py", stop_after="init")
    finally:
        os.chdir(cwd)
    scripts = dict(entry.split("=", 1) for entry in distribution.entry_points["console_scripts"])
    installed = {Path(target) / Path(source).name: source
                 for target, sources in distribution.data_files for source in sources}
    return {name.strip(): target.strip() for name, target in scripts.items()}, installed


def test_there_are_launch_files():
    assert [p.name for p in LAUNCH_FILES] == ["play_bag.launch.xml", "radar_pose.launch.xml", "teacher.launch.xml"]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_nodes_are_console_scripts_that_import(path, setup_kwargs):
    scripts, _ = setup_kwargs
    nodes = ET.parse(path).getroot().iter("node")
    for node in nodes:
        assert node.get("pkg") == "ros2_radar_pose"
        assert node.get("exec") in scripts, f"{node.get('exec')} is not a console script of the package"
        module, function = scripts[node.get("exec")].split(":")
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_substitutions_name_installed_files_and_declared_args(path, setup_kwargs):
    _, installed = setup_kwargs
    root = ET.parse(path).getroot()
    args = {arg.get("name") for arg in root.iter("arg")}
    assert (ROOT / "launch" / path.name).exists() and Path("share/ros2_radar_pose/launch") / path.name in installed
    for element in root.iter():
        for value in element.attrib.values():
            for kind, argument in SUBSTITUTION.findall(value):
                if kind == "var":
                    assert argument in args, f"$(var {argument}) is not a declared <arg>"
                elif kind == "find-pkg-share":
                    assert argument == "ros2_radar_pose"
                    relative = value.split(")", 1)[1].lstrip("/")
                    assert (ROOT / relative).is_file(), f"{relative} does not exist"
                    assert Path("share/ros2_radar_pose") / relative in installed, f"{relative} is not installed"
                elif kind == "eval":           # a condition: the args it reads are declared
                    for name in re.findall(r"\$\(var (\w+)\)", value):
                        assert name in args, f"$(var {name}) in $(eval ...) is not a declared <arg>"
                else:
                    pytest.fail(f"unexpected substitution $({kind} ...) in {path.name}")
