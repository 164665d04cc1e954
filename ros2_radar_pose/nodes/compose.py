"""radar-pose run: the graph's nodes in one process, for machines without ``ros2 launch``.

The nodes, parameters and remaps are those of the launch files: radar_ingest always; the student
and physics with a checkpoint (radar_pose.launch.xml); the bag player with a bag
(replay.launch.xml); the camera teacher on request (teacher.launch.xml). Each node reads its own
section of the params file, then gets the overrides the launch file gives it. They all spin on one
MultiThreadedExecutor, so that a slow callback (the student's network, a physics step) holds up
only its own node, as it would in separate processes.

Ctrl-C stops the graph cleanly (exit status 0; 1 when the bag being played turned out damaged). A
node refusing its parameters at start (a missing checkpoint, a bad value, an unreadable bag) is one
fatal line naming the node and exit status 2. The bag ending does not stop the graph, as in
replay.launch.xml, where the other nodes keep running after the bag player exits.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from ros2_radar_pose import topics
from ros2_radar_pose.data.bags import BagError
from ros2_radar_pose.ros.dds import use_discovery_profile
from ros2_radar_pose.ros.params import ParameterError
from ros2_radar_pose.ros.run import raise_unless_shut_down

LOGGER = "radar_pose_run"


@dataclass
class NodeSpec:
    """One node of the graph: its class (``module:Class``), parameter overrides and remaps."""

    name: str
    target: str
    overrides: dict[str, object] = field(default_factory=dict)
    remaps: dict[str, str] = field(default_factory=dict)


def plan(radar_topic: str = topics.RADAR_POINTS, student_checkpoint: str = "", device: str = "cpu",
         physics: bool = True, mount_xyz: Sequence[float] | None = None, mount_rpy: Sequence[float] | None = None,
         publish_mount: bool = False, bag: str = "", rate: float = 1.0, loop: bool = False, teacher: bool = False,
         teacher_backend: str = "blazepose", hybrik_checkpoint: str = "", smpl_model: str = "",
         image_topic: str = "/camera/image_raw", camera_info_topic: str = "/camera/camera_info") -> list[NodeSpec]:
    """The nodes to start, in the order to build them, with the launch files' overrides and remaps.

    The bag player comes last so that the graph is subscribed by the time it starts publishing.
    With ``publish_mount`` the mount (the given one, else the params file's ``radar_mount`` section)
    goes on /tf_static, as radar_pose.launch.xml's publish_mount does with tf2_ros.
    """
    mount = {"translation": mount_xyz, "rpy": mount_rpy}
    mount = {name: [float(v) for v in value] for name, value in mount.items() if value is not None}
    specs = [NodeSpec("radar_ingest", "ros2_radar_pose.nodes.radar_ingest:RadarIngestNode",
                      remaps={"radar/points": radar_topic})]
    if publish_mount:
        specs.append(NodeSpec("radar_mount", "ros2_radar_pose.nodes.radar_mount:RadarMountNode", dict(mount)))
    if teacher:
        specs.append(NodeSpec("teacher", "ros2_radar_pose.nodes.teacher:TeacherNode",
                              {"backend": teacher_backend, "hybrik_checkpoint": hybrik_checkpoint,
                               "smpl_model": smpl_model, "device": device},
                              {"camera/image_raw": image_topic, "camera/camera_info": camera_info_topic}))
    if student_checkpoint:
        specs.append(NodeSpec("student", "ros2_radar_pose.nodes.student:StudentNode",
                              {"checkpoint": student_checkpoint, "device": device, "publish_tf": not physics}))
        if physics:
            specs.append(NodeSpec("physics", "ros2_radar_pose.nodes.physics:PhysicsNode",
                                  {f"mount_{name}": value for name, value in mount.items()}))
    if bag:
        specs.append(NodeSpec("bag_player", "ros2_radar_pose.nodes.bag_player:BagPlayerNode",
                              {"bag": bag, "rate": float(rate), "loop": loop}))
    return specs


def build(spec: NodeSpec, params_file: str | Path) -> Node:
    """Construct the node of ``spec`` as ``ros2 run ... --ros-args --params-file FILE -r ...`` would,
    with its overrides on top (they win over the file, like a launch file's <param> after <param from>)."""
    module, _, class_name = spec.target.partition(":")
    node_class = getattr(importlib.import_module(module), class_name)
    cli_args = ["--ros-args", "--params-file", str(params_file)]
    for source, target in spec.remaps.items():
        cli_args += ["-r", f"{source}:={target}"]
    overrides = [Parameter(name, value=value) for name, value in spec.overrides.items()]
    return node_class(cli_args=cli_args, parameter_overrides=overrides)


def run_graph(specs: list[NodeSpec], params_file: str | Path, ros_args: Sequence[str] = ()) -> int:
    """Build the nodes of ``specs``, spin them until Ctrl-C and return the exit status.

    ``ros_args`` (what follows ``--ros-args`` on the command line) apply to every node, as global
    arguments do in ``ros2 run``: ``--log-level debug``, ``-r __ns:=/robot1``.
    """
    use_discovery_profile()
    rclpy.init(args=["radar-pose", "--ros-args", *ros_args])
    logger = rclpy.logging.get_logger(LOGGER)
    nodes: dict[str, Node] = {}
    executor: MultiThreadedExecutor | None = None
    code = 0
    try:
        for spec in specs:
            try:
                nodes[spec.name] = build(spec, params_file)
            except (ParameterError, BagError) as error:  # one clear line, no traceback
                rclpy.logging.get_logger(spec.name).fatal(str(error))
                return 2
        # A thread per node: a node's callbacks run one at a time (its default callback group),
        # so more threads than nodes would idle.
        executor = MultiThreadedExecutor(num_threads=max(2, len(nodes)))
        for node in nodes.values():
            executor.add_node(node)
        logger.info(f"running {', '.join(nodes)} in one process with parameters from {params_file}; "
                    "Ctrl-C stops")
        player = nodes.get("bag_player")
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
            if player is not None and player.finished.is_set():
                code = player.exit_code
                logger.info("the bag has been played; the other nodes keep running until Ctrl-C")
                player = None
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError as error:
        raise_unless_shut_down(error)
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)   # let running callbacks end before their nodes go
        for node in reversed(list(nodes.values())):
            node.destroy_node()
        rclpy.try_shutdown()
    return code
