"""Launch files: every node is a console script of the package (or, under a condition, a tool of an
allowed package), every file they name exists and is installed, every substitution refers to
something declared; the RViz config shows the package's topics in its frame."""
import importlib
import os
import re
import xml.etree.ElementTree as ET
from distutils.core import run_setup
from pathlib import Path

import pytest
import yaml

from ros2_radar_pose import topics

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted(ROOT.glob("launch/*.launch.xml"))
SUBSTITUTION = re.compile(r"\$\((\S+)\s*([^)]*)\)")
# Nodes of other packages a launch file may start: optional tools, never the graph itself, so
# always behind a launch argument (if="...") that is off unless asked for.
OTHER_PACKAGES = {"rviz2": {"rviz2"}, "tf2_ros": {"static_transform_publisher"}}
RVIZ = ROOT / "config" / "radar_pose.rviz"


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
    assert [p.name for p in LAUNCH_FILES] == ["radar_pose.launch.xml", "replay.launch.xml", "teacher.launch.xml"]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_nodes_are_console_scripts_that_import(path, setup_kwargs):
    scripts, _ = setup_kwargs
    nodes = ET.parse(path).getroot().iter("node")
    for node in nodes:
        if node.get("pkg") != "ros2_radar_pose":
            assert node.get("exec") in OTHER_PACKAGES.get(node.get("pkg"), ()), \
                f"{node.get('pkg')} {node.get('exec')} is neither the package's nor an allowed tool"
            assert node.get("if"), f"{node.get('pkg')} {node.get('exec')} must be optional (if=...)"
            continue
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


def test_replay_passes_the_graph_arguments_through():
    root = ET.parse(ROOT / "launch" / "replay.launch.xml").getroot()
    graph = {arg.get("name") for arg in ET.parse(ROOT / "launch" / "radar_pose.launch.xml").getroot().iter("arg")}
    include = root.find("include")
    assert include is not None and include.get("file").endswith("/launch/radar_pose.launch.xml")
    passed = {arg.get("name"): arg.get("value") for arg in include.iter("arg")}
    assert passed == {name: f"$(var {name})" for name in graph}


def test_the_mount_publisher_and_physics_take_the_same_mount():
    root = ET.parse(ROOT / "launch" / "radar_pose.launch.xml").getroot()
    [mount] = [n for n in root.iter("node") if n.get("exec") == "static_transform_publisher"]
    args = " ".join(mount.get("args").split())
    for axis, (source, index) in {"x": ("xyz", 0), "y": ("xyz", 1), "z": ("xyz", 2), "roll": ("rpy", 0),
                                  "pitch": ("rpy", 1), "yaw": ("rpy", 2)}.items():
        assert f"--{axis} $(eval '$(var mount_{source})[{index}]')" in args
    assert f"--frame-id {topics.WORLD_FRAME} --child-frame-id {topics.RADAR_FRAME}" in args
    assert mount.get("if") == "$(var publish_mount)"
    physics = [n for n in root.iter("node") if n.get("exec") == "physics"]
    assert len(physics) == 2            # one for each value of publish_mount, never both
    with_mount = [n for n in physics if n.find("param[@name='mount_translation']") is not None]
    assert len(with_mount) == 1 and r"\'$(var publish_mount)\' == \'true\'" in with_mount[0].get("if")
    params = {p.get("name"): p.get("value") for p in with_mount[0].iter("param") if p.get("name")}
    assert "$(var mount_xyz)" in params["mount_translation"] and "$(var mount_rpy)" in params["mount_rpy"]


@pytest.fixture(scope="module")
def rviz_config():
    return yaml.safe_load(RVIZ.read_text())


def _topic_values(tree):
    """Every ``Topic: {Value: ...}`` in an RViz config, wherever it is."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key.endswith("Topic") and isinstance(value, dict) and "Value" in value:
                yield value["Value"]
            yield from _topic_values(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _topic_values(item)


def test_the_rviz_config_shows_the_package_topics_in_the_radar_frame(rviz_config, setup_kwargs):
    _, installed = setup_kwargs
    assert Path("share/ros2_radar_pose/config/radar_pose.rviz") in installed
    manager = rviz_config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == topics.RADAR_FRAME
    package_topics = {value for name, value in vars(topics).items() if name.isupper() and value.startswith("/")}
    shown = list(_topic_values(rviz_config))
    assert shown and set(shown) <= package_topics, set(shown) - package_topics
    displays = {(d["Class"], d.get("Topic", {}).get("Value")): d for d in manager["Displays"]}
    enabled = {key for key, display in displays.items() if display["Enabled"]}
    assert {("rviz_default_plugins/Grid", None), ("rviz_default_plugins/TF", None),
            ("rviz_default_plugins/MarkerArray", topics.MARKERS), ("rviz_default_plugins/PointCloud2", topics.POINTS),
            ("rviz_default_plugins/PoseArray", topics.SKELETON)} <= enabled
    assert {("rviz_default_plugins/PointCloud2", topics.RADAR_POINTS),
            ("rviz_default_plugins/PoseArray", topics.TEACHER_SKELETON)} <= set(displays) - enabled
    for (kind, _), display in displays.items():
        if kind == "rviz_default_plugins/PointCloud2":
            assert display["Color Transformer"] == "Intensity" and display["Channel Name"] == "intensity"
            assert display["Topic"]["Reliability Policy"] == "Best Effort"
    assert manager["Views"]["Current"]["Class"] == "rviz_default_plugins/Orbit"
