"""student: the person's radar cloud in, the radar student's skeleton out.

Input: ``radar_pose/points`` (radar_ingest's clouds). Output: ``radar_pose/student/skeleton``
(PoseArray, the cloud's stamp and frame, the checkpoint's joint set in order, global orientations
for SMPL-based students, identity otherwise), and with ``publish_tf`` (on when physics refinement
is off) TF frames of the body (REP-155, ``body_<body_id>`` and ``<joint>_<body_id>``) and markers
for RViz. No skeleton while no frame of the window has points (nobody seen for W frames; counted
as ``frames_no_person``). ``/diagnostics``: rate, inference time, frames dropped and why.

A missing or unusable checkpoint stops the node at start with one line saying what is wrong.
"""
from __future__ import annotations

import time
import traceback

import numpy as np
import torch
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from ros2_radar_pose.body.models import load_body_model
from ros2_radar_pose.body.smpl_file import SMPLFileError
from ros2_radar_pose.ros.diagnostics import FrameStats, NodeDiagnostics
from ros2_radar_pose.ros.params import ParameterError, declare
from ros2_radar_pose.ros.pointcloud2 import CloudDecoder, PointCloudError
from ros2_radar_pose.ros.qos import SENSOR_PUBLICATION, SENSOR_SUBSCRIPTION, TF
from ros2_radar_pose.ros.run import spin_node
from ros2_radar_pose.ros.skeleton import skeleton_to_markers, skeleton_to_pose_array, skeleton_to_tf
from ros2_radar_pose.ros.time import to_seconds
from ros2_radar_pose.student.checkpoint import CheckpointError, load_student
from ros2_radar_pose.student.streaming import StreamingStudent


class StudentNode(Node):
    def __init__(self, **node_options):
        super().__init__("student", **node_options)
        param = lambda name, default, description="": declare(self, name, default, description)  # noqa: E731
        checkpoint = param("checkpoint", "", "student checkpoint (radar-pose train writes OUT/student.pt)")
        device = param("device", "cpu", "torch device: cpu, cuda, cuda:1 ...")
        joint_set = param("joint_set", "", "refuse a checkpoint of another joint set (empty: take any)")
        smpl_model = param("smpl_model", "", "SMPL model file for orientations (empty: the built-in body)")
        self.publish_tf = param("publish_tf", True, "publish TF frames and markers (off when physics refines)")
        self.body_id = param("body_id", "0", "REP-155 body id in frame names")
        self.reset_after = param("reset_after", 1.0, "seconds without a cloud after which the window restarts")
        self.stale_after = param("stale_after", 2.0, "seconds without input before diagnostics say ERROR")
        threads = param("threads", 1, "CPU threads for the network (one frame is small work; more threads "
                                      "spin against the other nodes on a shared CPU)")
        if threads < 1:
            raise ParameterError(f"parameter 'threads' must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        if not checkpoint:
            raise ParameterError("parameter 'checkpoint' is empty: name a student checkpoint "
                                 "(radar-pose train writes OUT/student.pt)")
        try:
            model = load_student(checkpoint, device, expect={"joint_set": joint_set} if joint_set else None)
            body = load_body_model(smpl_model or None) if model.config.rotations else None
        except (CheckpointError, SMPLFileError) as error:
            raise ParameterError(str(error)) from None
        self.joint_set = model.joint_set
        self.student = StreamingStudent(model, body)
        self.decode = CloudDecoder({}, 20000)

        self.stats = FrameStats(self.stale_after)
        self._last_stamp: float | None = None
        self.skeleton = self.create_publisher(PoseArray, "radar_pose/student/skeleton", SENSOR_PUBLICATION)
        self.tf = self.create_publisher(TFMessage, "/tf", TF) if self.publish_tf else None
        self.markers = self.create_publisher(MarkerArray, "radar_pose/markers", SENSOR_PUBLICATION) \
            if self.publish_tf else None
        self.diagnostics = NodeDiagnostics(self, "radar student", self._status, hardware_id=str(checkpoint),
                                           period=param("diagnostics_period", 1.0))
        self.create_subscription(PointCloud2, "radar_pose/points", self.on_cloud, SENSOR_SUBSCRIPTION)
        self.get_logger().info(f"student {checkpoint} ({self.joint_set.name}, window {model.config.window}) on "
                               f"{device}: {self.resolve_topic_name('radar_pose/points')} -> "
                               f"{self.skeleton.topic_name}")

    def on_cloud(self, msg: PointCloud2) -> None:
        try:
            cloud = self.decode(msg)
        except (PointCloudError, ValueError) as error:
            self._drop("malformed_cloud", str(error))
            return
        stamp = to_seconds(msg.header.stamp)
        if self._last_stamp is not None and not 0 <= stamp - self._last_stamp <= self.reset_after:
            self.student.reset()           # a gap, or time went back (a bag looped): a new window
        self._last_stamp = stamp
        started = time.perf_counter()
        try:
            pose = self.student.push(cloud)
        except Exception:  # a bug must cost one frame, not the node
            self._drop("internal_error", traceback.format_exc())
            return
        if not self.student.window_has_points:      # nobody seen for a window: no skeleton of nobody
            self.stats.handled(seconds=time.perf_counter() - started, no_person=1)
            return
        finite = np.isfinite(pose.positions).all() and (pose.rotations is None or np.isfinite(pose.rotations).all())
        if not finite:
            self._drop("non_finite_pose", "the network gave NaN or inf")
            return
        self.skeleton.publish(skeleton_to_pose_array(pose.positions, pose.rotations, msg.header))
        if self.publish_tf:
            rotations = pose.rotations if pose.rotations is not None else np.tile([0.0, 0.0, 0.0, 1.0],
                                                                                   (len(pose.positions), 1))
            self.tf.publish(skeleton_to_tf(pose.positions, rotations, self.joint_set, msg.header, self.body_id))
            self.markers.publish(skeleton_to_markers(pose.positions, self.joint_set, msg.header,
                                                     namespace="student"))
        self.stats.handled(seconds=time.perf_counter() - started)

    def _drop(self, kind: str, message: str) -> None:
        self.stats.dropped()
        self.diagnostics.problem(kind, f"{message}; frame dropped")

    def _status(self) -> tuple[int, str, dict]:
        report = self.stats.report()
        values = {**report.values, "inference_ms": 1000 * report.per_frame("seconds"), "joint_set": self.joint_set.name,
                  "frames_no_person": report.totals["no_person"]}
        return report.level, report.message(f"{values['inference_ms']:.1f} ms per frame"), values


def main(args=None) -> None:
    spin_node(StudentNode, "student", args)


if __name__ == "__main__":
    main()
