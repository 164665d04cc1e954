"""The trainer node as its own process: trains from a bag, reports progress on its status topic
and /diagnostics, writes the checkpoint, exits 0; bad parameters and bags are clear errors."""
import json
from functools import partial
from pathlib import Path

import pytest
import yaml
from conftest import start_node
from diagnostic_msgs.msg import DiagnosticArray
from ros_probe import ProbeNode
from std_msgs.msg import String

from ros2_radar_pose.data.synthetic import simulate_bag
from ros2_radar_pose.ros.qos import DIAGNOSTICS, LATCHED_STATUS
from ros2_radar_pose.student.checkpoint import load_student
from ros2_radar_pose.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = ["student.window:=8", "student.dim:=32", "student.depth:=1", "student.heads:=2", "student.nb_features:=16",
        "batch_size:=4", "windows_per_example:=4", "warmup_steps:=5", "log_every:=5"]


start_trainer = partial(start_node, "trainer", params_file=ROOT / "config" / "radar_pose.yaml")


def test_the_parameter_file_lists_every_training_setting_with_its_default():
    params = yaml.safe_load((ROOT / "config" / "radar_pose.yaml").read_text())["trainer"]["ros__parameters"]

    def flat(tree, prefix=""):
        for key, value in tree.items():
            yield from flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [(prefix + key, value)]
    listed = dict(flat(params))
    defaults = {k: v for k, v in TrainConfig.flat_defaults().items() if k != "progress_bar"}
    assert set(listed) - {"bags", "diagnostics_period", "wait_subscribers"} == set(defaults)
    for key, default in defaults.items():
        assert listed[key] == {None: "", (): [""]}.get(default if not isinstance(default, list) else tuple(default),
                                                       default), key


@pytest.mark.ros
@pytest.mark.slow
def test_the_trainer_node_trains_reports_and_exits(tmp_path):
    bag = tmp_path / "sim"
    simulate_bag(bag, subjects=1, minutes=0.25, seed=2)
    probe = ProbeNode()
    statuses, diagnostics = [], []
    probe.node.create_subscription(String, "/radar_pose/trainer/status", lambda m: statuses.append(json.loads(m.data)),
                                   LATCHED_STATUS)
    probe.node.create_subscription(DiagnosticArray, "/diagnostics",
                                   lambda m: diagnostics.extend(s for s in m.status if s.name.startswith("trainer")),
                                   DIAGNOSTICS)
    try:
        with start_trainer(tmp_path, f"bags:=['{bag}']", f"out_dir:={tmp_path / 'run'}", "epochs:=3",
                           "wait_subscribers:=1", *TINY) as node:
            assert probe.spin_until(lambda: not node.alive(), 240.0), node.output()
            assert node.stop() == 0, node.output()
            probe.spin_until(lambda: statuses and statuses[-1]["state"] == "finished", 5.0)
    finally:
        probe.close()
    assert statuses[-1]["state"] == "finished" and statuses[-1]["step"] == statuses[-1]["total_steps"] > 0
    assert any(s["state"] == "training" and 0 < s.get("step", 0) < s["total_steps"] for s in statuses)
    assert load_student(tmp_path / "run" / "student.pt").config.window == 8
    assert "without a label" in node.output()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("params, code, message", [
    ([], 2, "parameter 'bags' is empty"),
    (["bags:=['/nonexistent/bag']"], 1, "/nonexistent/bag"),
    (["bags:=['x']", "student.joint_set:=mars_19"], 2, "rotations need an SMPL-based joint set"),
])
def test_bad_settings_and_bags_are_clear_errors(tmp_path, params, code, message):
    node = start_trainer(tmp_path, *params)
    node.process.wait(120)
    assert node.stop() == code, node.output()
    assert message in node.output()
