"""physics: the student's skeleton in, a physically plausible skeleton out (physics/tracker.py).

Input: ``radar_pose/student/skeleton`` (PoseArray, SMPL-24 joints and global orientations).
Output: ``radar_pose/skeleton`` (PoseArray, the input's stamp and frame), TF frames of the body
(REP-155, ``body_<body_id>`` and ``<joint>_<body_id>``) and markers for RViz. With ``enabled``
false the input passes through unchanged (TF and markers still come). ``/diagnostics``: rate,
physics time per frame, resets, frames dropped and why.

The floor: a static transform ``floor_frame`` -> the skeleton's frame on ``/tf_static`` (the
radar's mount, as bags and the robot description publish it) or, until one comes, the parameters
``mount_translation`` and ``mount_rpy``. The humanoid's shape: ``betas`` and ``body_mass`` of the
built-in body, or of SMPL with ``smpl_model``; setting either at run time rebuilds it.
"""
from __future__ import annotations

import dataclasses
import time
import traceback

import numpy as np
import torch
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.body.models import load_body_model
from ros2_radar_pose.body.smpl_file import SMPLFileError
from ros2_radar_pose.physics.contacts import ContactConfig
from ros2_radar_pose.physics.filters import OneEuroConfig
from ros2_radar_pose.physics.humanoid import BodyShape
from ros2_radar_pose.physics.tracker import FloorFrame, PhysicsTracker, TrackerConfig
from ros2_radar_pose.ros.diagnostics import FrameStats, NodeDiagnostics
from ros2_radar_pose.ros.params import ParameterError, declare, declare_dataclass, declare_vector
from ros2_radar_pose.ros.qos import SENSOR_PUBLICATION, SENSOR_SUBSCRIPTION, TF, TF_STATIC
from ros2_radar_pose.ros.run import spin_node
from ros2_radar_pose.ros.skeleton import (
    pose_array_to_skeleton,
    skeleton_to_markers,
    skeleton_to_pose_array,
    skeleton_to_tf,
)
from ros2_radar_pose.ros.time import to_seconds


def tracker_config(node: Node) -> TrackerConfig:
    """TrackerConfig from parameters ``tracker.<field>``, ``contacts.<field>`` and ``smoothing.<field>``."""
    fields = {f.name: declare(node, f"tracker.{f.name}", f.default)
              for f in dataclasses.fields(TrackerConfig) if f.name not in ("contacts", "smoothing")}
    try:
        return TrackerConfig(**fields, contacts=declare_dataclass(node, "contacts", ContactConfig),
                             smoothing=declare_dataclass(node, "smoothing", OneEuroConfig))
    except ValueError as error:
        raise ParameterError(f"physics parameters: {error}") from None


class PhysicsNode(Node):
    def __init__(self, **node_options):
        super().__init__("physics", **node_options)
        param = lambda name, default, description="": declare(self, name, default, description)  # noqa: E731
        self.enabled = param("enabled", True, "false: pass the student's skeleton through unchanged")
        smpl_model = param("smpl_model", "", "SMPL model file for the humanoid's shape (empty: the built-in body)")
        self.betas = param("betas", [0.0], "shape coefficients of the body model ([0.0]: the average body)")
        self.body_mass = param("body_mass", 0.0, "kg (0: from a body-mass index of 23 at the body's height)")
        self.floor_frame = param("floor_frame", "world", "the z-up frame whose z = 0 is the floor")
        translation = declare_vector(self, "mount_translation", [0.0, 0.0, 1.0],
                                     "the skeleton frame's origin in floor_frame, m")
        rpy = declare_vector(self, "mount_rpy", [0.0, 0.0, 0.0],
                             "the skeleton frame's roll, pitch, yaw in floor_frame, rad")
        self.publish_tf = param("publish_tf", True, "publish TF frames and markers")
        self.body_id = param("body_id", "0", "REP-155 body id in frame names")
        self.stale_after = param("stale_after", 2.0, "seconds without input before diagnostics say ERROR")
        threads = param("threads", 1, "CPU threads for the IK's torch work (small; more threads spin against "
                                      "the other nodes on a shared CPU)")
        if threads < 1:
            raise ParameterError(f"parameter 'threads' must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        self.config = tracker_config(self)
        self.floor = FloorFrame(tuple(translation), tuple(rpy))
        self.floor_source = "parameters"
        self._mounts: dict[str, FloorFrame] = {}        # skeleton frame -> its mount, from /tf_static
        try:
            self.body = load_body_model(smpl_model or None)
        except SMPLFileError as error:
            raise ParameterError(str(error)) from None
        self.tracker = PhysicsTracker(self._shape(self.betas, self.body_mass), self.config, self.floor)
        self._rebuild: tuple[list[float], float] | None = None

        self.stats = FrameStats(self.stale_after)
        self.skeleton = self.create_publisher(PoseArray, "radar_pose/skeleton", SENSOR_PUBLICATION)
        self.tf = self.create_publisher(TFMessage, "/tf", TF) if self.publish_tf else None
        self.markers = self.create_publisher(MarkerArray, "radar_pose/markers", SENSOR_PUBLICATION) \
            if self.publish_tf else None
        self.diagnostics = NodeDiagnostics(self, "physics refinement", self._status,
                                           period=param("diagnostics_period", 1.0))
        self.create_subscription(TFMessage, "/tf_static", self.on_tf_static, TF_STATIC)
        self.create_subscription(PoseArray, "radar_pose/student/skeleton", self.on_skeleton, SENSOR_SUBSCRIPTION)
        self.add_on_set_parameters_callback(self.on_parameters)
        self.get_logger().info(f"physics {'on' if self.enabled else 'off (pass-through)'}, "
                               f"{self.config.physics_hz:g} Hz, body {type(self.body).__name__} "
                               f"{self.tracker.shape.height:.2f} m {self.tracker.shape.mass:.1f} kg: "
                               f"{self.resolve_topic_name('radar_pose/student/skeleton')} -> "
                               f"{self.skeleton.topic_name}")

    def _shape(self, betas: list[float], body_mass: float) -> BodyShape:
        if not all(np.isfinite(betas)) or not (np.isfinite(body_mass) and body_mass >= 0):
            raise ParameterError(f"betas must be finite and body_mass >= 0, got {betas}, {body_mass}")
        return BodyShape.of(self.body, np.asarray(betas), body_mass or None)

    def on_parameters(self, parameters) -> SetParametersResult:
        betas, mass = self.betas, self.body_mass
        for parameter in parameters:
            if parameter.name == "betas":
                betas = [float(v) for v in parameter.value]
            elif parameter.name == "body_mass":
                mass = float(parameter.value)
        if (betas, mass) != (self.betas, self.body_mass):
            try:
                self._shape(betas, mass)
            except (ParameterError, ValueError, TypeError) as error:
                return SetParametersResult(successful=False, reason=str(error))
            self.betas, self.body_mass = betas, mass
            self._rebuild = (betas, mass)
        return SetParametersResult(successful=True)

    def on_tf_static(self, msg: TFMessage) -> None:
        for transform in msg.transforms:
            if transform.header.frame_id != self.floor_frame:
                continue
            t, q = transform.transform.translation, transform.transform.rotation
            rpy = tuple(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_euler("xyz"))
            self._mounts[transform.child_frame_id] = FloorFrame((t.x, t.y, t.z), rpy)

    def on_skeleton(self, msg: PoseArray) -> None:
        positions, quaternions = pose_array_to_skeleton(msg)
        if len(positions) != len(SMPL_24):
            self._drop("wrong_joint_count", f"the skeleton has {len(positions)} joints, physics needs SMPL-24 (24)")
            return
        started = time.perf_counter()
        reset = False
        if self.enabled:
            try:
                positions, quaternions, reset = self._refine(positions, quaternions, to_seconds(msg.header.stamp),
                                                             msg.header.frame_id)
            except Exception:  # a bug must cost one frame, not the node
                self._drop("internal_error", traceback.format_exc())
                return
            if not np.isfinite(positions).all():
                self._drop("no_target_yet", "no usable skeleton has come yet (non-finite input)")
                return
        self.skeleton.publish(skeleton_to_pose_array(positions, quaternions, msg.header))
        if self.publish_tf:
            self.tf.publish(skeleton_to_tf(positions, quaternions, SMPL_24, msg.header, self.body_id))
            self.markers.publish(skeleton_to_markers(positions, SMPL_24, msg.header, namespace="skeleton"))
        self.stats.handled(seconds=time.perf_counter() - started, resets=int(reset))

    def _refine(self, positions: np.ndarray, quaternions: np.ndarray, stamp: float, frame_id: str):
        if self._rebuild is not None:
            self.tracker.set_shape(self._shape(*self._rebuild))
            self._rebuild = None
            self.get_logger().info(f"humanoid rebuilt: {self.tracker.shape.height:.2f} m, "
                                   f"{self.tracker.shape.mass:.1f} kg")
        floor = self._mounts.get(frame_id)
        if floor is not None and floor != self.tracker.floor:
            self.tracker.floor, self.floor_source = floor, f"/tf_static {self.floor_frame} -> {frame_id}"
        norms = np.linalg.norm(quaternions, axis=1, keepdims=True)
        usable = np.isfinite(quaternions).all() and (norms > 1e-6).all()
        rotations = Rotation.from_quat(quaternions / norms).as_matrix() if usable else np.full((24, 3, 3), np.nan)
        frame = self.tracker.step(positions, rotations, stamp)
        if not np.isfinite(frame.rotations).all():
            return frame.positions, None, frame.reset
        return frame.positions, Rotation.from_matrix(frame.rotations).as_quat(), frame.reset

    def _drop(self, kind: str, message: str) -> None:
        self.stats.dropped()
        self.diagnostics.problem(kind, f"{message}; frame dropped")

    def _status(self) -> tuple[int, str, dict]:
        report = self.stats.report()
        values = {**report.values, "resets": report.totals["resets"],
                  "physics_ms": 1000 * report.per_frame("seconds"), "enabled": self.enabled,
                  "floor": self.floor_source}
        return report.level, report.message(f"{values['physics_ms']:.1f} ms per frame"), values

    def destroy_node(self):
        if hasattr(self, "tracker"):        # not there when a bad parameter stopped __init__
            self.tracker.close()
        return super().destroy_node()


def main(args=None) -> None:
    spin_node(PhysicsNode, "physics", args)


if __name__ == "__main__":
    main()
