"""teacher: camera images in, the teacher's skeleton in the radar frame out, for recording sessions.

Input: ``camera/image_raw`` and ``camera/camera_info``; optionally ``radar_pose/points``
(radar_ingest's person cloud, which places the person box and, for BlazePose, the root) and
``radar_pose/teacher/person_roi`` (sensor_msgs/RegionOfInterest from a person detector, which
wins over the radar). Output: ``radar_pose/teacher/skeleton`` (PoseArray, SMPL-24, in the radar
frame, the image's stamp) and with ``publish_tf`` TF frames ``body_teacher_<id>`` and
``<joint>_teacher_<id>``. ``/diagnostics``: rate, latency from the image's stamp, inference
time, images dropped while busy, images without a person.

The camera's pose comes from /tf_static (``radar_frame`` -> the images' frame) or, when TF has
none, from the ``camera.xyz`` and ``camera.rpy`` parameters, which ``camera.publish_static``
puts on /tf_static for RViz and bags. The network runs in its own thread on the newest image
only: a slow backend costs old images (counted), never a growing queue.
"""
from __future__ import annotations

import threading
import time
import traceback

import numpy as np
from geometry_msgs.msg import PoseArray, TransformStamped
from rclpy.node import Node

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:            # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from ros2_radar_pose.body.joint_sets import SMPL_24
from ros2_radar_pose.data.bags import Transform
from ros2_radar_pose.ros.diagnostics import FrameStats, NodeDiagnostics
from ros2_radar_pose.ros.params import ParameterError, declare, declare_vector
from ros2_radar_pose.ros.pointcloud2 import CloudDecoder, PointCloudError
from ros2_radar_pose.ros.qos import IMAGE_SUBSCRIPTIONS, SENSOR_PUBLICATION, SENSOR_SUBSCRIPTION, TF, TF_STATIC
from ros2_radar_pose.ros.run import spin_node
from ros2_radar_pose.ros.skeleton import (
    skeleton_to_markers,
    skeleton_to_pose_array,
    skeleton_to_tf,
    transform_stamped,
)
from ros2_radar_pose.ros.time import to_seconds
from ros2_radar_pose.teacher.backends import BACKENDS, make_backend
from ros2_radar_pose.teacher.camera import CameraMount, mount_from_transforms
from ros2_radar_pose.teacher.crop import PersonBox
from ros2_radar_pose.teacher.images import ImageError, camera_from_info, image_to_rgb


class TeacherNode(Node):
    def __init__(self, **node_options):
        super().__init__("teacher", **node_options)
        param = lambda name, default, description="": declare(self, name, default, description)  # noqa: E731
        backend = param("backend", "blazepose", f"{' or '.join(BACKENDS)} (hybrik needs its checkpoint and SMPL)")
        checkpoint = param("hybrik_checkpoint", "", "HybrIK ResNet-34 checkpoint (github.com/Jeff-sjtu/HybrIK)")
        smpl_model = param("smpl_model", "", "SMPL model file (required by hybrik; optional for blazepose)")
        device = param("device", "cpu", "torch device of the hybrik network: cpu, cuda, cuda:1 ...")
        self.radar_frame = param("radar_frame", "radar_link", "the frame the skeleton is published in")
        xyz = declare_vector(self, "camera.xyz", [0.0, 0.0, 0.0], "camera position in radar_frame when TF has none, m")
        rpy = declare_vector(self, "camera.rpy", [0.0, 0.0, 0.0],
                             "camera roll, pitch, yaw in radar_frame (x forward, z up), rad")
        self.camera_frame = param("camera.frame_id", "camera_optical_frame",
                                  "the images' optical frame (for camera.publish_static)")
        publish_static = param("camera.publish_static", False, "put camera.xyz/rpy on /tf_static")
        self.radar_tolerance = param("radar_tolerance", 0.2, "s between an image and the radar cloud that boxes it")
        self.roi_timeout = param("roi_timeout", 0.5, "s a person_roi box stays valid")
        self.publish_tf = param("publish_tf", False, "publish TF frames and markers of the teacher's skeleton")
        self.body_id = "teacher_" + param("body_id", "0", "REP-155 body id (frames <joint>_teacher_<id>)")
        self.stale_after = param("stale_after", 2.0, "seconds without an image before diagnostics say ERROR")
        image_qos = param("image_qos", "reliable", "reliable (most camera drivers) or sensor_data (best effort)")
        if image_qos not in IMAGE_SUBSCRIPTIONS:
            raise ParameterError(f"image_qos must be one of {', '.join(IMAGE_SUBSCRIPTIONS)}, got {image_qos!r}")
        try:
            self.backend = make_backend(backend, checkpoint, smpl_model, device)
        except (ValueError, ImportError) as error:   # bad names, missing or wrong files, the missing extra
            raise ParameterError(str(error)) from None
        self.backend_name = backend
        self.parameter_mount = CameraMount.from_body_pose(xyz, rpy)
        self._statics: dict[str, Transform] = {}
        self.mount_source = "parameters"

        self._lock = threading.Lock()
        self._camera_info: CameraInfo | None = None
        self._pending: Image | None = None
        self._radar: tuple[float, np.ndarray] | None = None          # stamp, person centre (radar frame)
        self._roi: tuple[float, RegionOfInterest] | None = None      # arrival time, box
        self._wake = threading.Event()
        self._stop = False
        self.stats = FrameStats(self.stale_after)
        self.counts = {"dropped_busy": 0, "no_person": 0}

        self.skeleton = self.create_publisher(PoseArray, "radar_pose/teacher/skeleton", SENSOR_PUBLICATION)
        self.tf = self.create_publisher(TFMessage, "/tf", TF) if self.publish_tf else None
        self.markers = self.create_publisher(MarkerArray, "radar_pose/markers", SENSOR_PUBLICATION) \
            if self.publish_tf else None
        if publish_static:
            self.static = self.create_publisher(TFMessage, "/tf_static", TF_STATIC)
            self.static.publish(TFMessage(transforms=[self._mount_transform()]))
        self.diagnostics = NodeDiagnostics(self, f"camera teacher ({backend})", self._status,
                                           hardware_id=checkpoint or backend, period=param("diagnostics_period", 1.0))
        self.decode = CloudDecoder({}, 20000)
        self.create_subscription(Image, "camera/image_raw", self.on_image, IMAGE_SUBSCRIPTIONS[image_qos],
                                 event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self.on_incompatible_qos))
        self.create_subscription(CameraInfo, "camera/camera_info", self.on_camera_info, SENSOR_SUBSCRIPTION)
        self.create_subscription(PointCloud2, "radar_pose/points", self.on_cloud, SENSOR_SUBSCRIPTION)
        self.create_subscription(RegionOfInterest, "radar_pose/teacher/person_roi", self.on_roi, SENSOR_SUBSCRIPTION)
        self.create_subscription(TFMessage, "/tf_static", self.on_tf_static, TF_STATIC)
        self._worker = threading.Thread(target=self._work, name="teacher", daemon=True)
        self._worker.start()
        self.get_logger().info(f"teacher ({backend} on {device}): {self.resolve_topic_name('camera/image_raw')} "
                               f"-> {self.skeleton.topic_name} in {self.radar_frame}")

    # -- callbacks: cheap, they only keep the newest input ----------------------------------------------

    def on_image(self, msg: Image) -> None:
        with self._lock:
            if self._pending is not None:
                self.counts["dropped_busy"] += 1
                self.stats.dropped()
            self._pending = msg
        self._wake.set()

    def on_incompatible_qos(self, event) -> None:
        self.diagnostics.problem("incompatible_qos", "the camera's publisher cannot match the image subscription "
                                 "(a best-effort camera needs image_qos: sensor_data)")

    def on_camera_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._camera_info = msg

    def on_cloud(self, msg: PointCloud2) -> None:
        try:
            cloud = self.decode(msg)
        except (PointCloudError, ValueError) as error:
            self.diagnostics.problem("malformed_cloud", str(error))
            return
        if len(cloud) and msg.header.frame_id in ("", self.radar_frame):
            with self._lock:
                self._radar = (to_seconds(msg.header.stamp), np.median(cloud[:, :3], axis=0).astype(np.float64))

    def on_roi(self, msg: RegionOfInterest) -> None:
        with self._lock:
            self._roi = (time.monotonic(), msg)

    def on_tf_static(self, msg: TFMessage) -> None:
        with self._lock:
            self._statics.update((tf.child_frame_id, Transform.of_message(tf)) for tf in msg.transforms)

    # -- the worker: one image at a time, the newest ------------------------------------------------------

    def _work(self) -> None:
        while not self._stop:
            self._wake.wait(0.2)
            self._wake.clear()
            with self._lock:
                msg, self._pending = self._pending, None
            if msg is None or self._stop:
                continue
            try:
                self._label(msg)
            except ValueError as error:             # ImageError among them: say what is wrong
                self._drop("bad_image", str(error))
            except Exception:  # a bug must cost one image, not the node
                self._drop("internal_error", traceback.format_exc())

    def _label(self, msg: Image) -> None:
        with self._lock:
            info, radar, roi, statics = self._camera_info, self._radar, self._roi, list(self._statics.values())
        if info is None:
            self._drop("no_camera_info", "no camera_info received yet")
            return
        started = time.perf_counter()
        camera = camera_from_info(info)
        image = image_to_rgb(msg)
        if image.shape[:2] != (camera.height, camera.width):
            raise ImageError(f"image is {image.shape[1]}x{image.shape[0]}, camera_info says "
                             f"{camera.width}x{camera.height}")
        mount = self._mount(msg.header.frame_id, statics)
        stamp = to_seconds(msg.header.stamp)
        centre = radar[1] if radar is not None and abs(radar[0] - stamp) <= self.radar_tolerance else None
        box = None
        if roi is not None and time.monotonic() - roi[0] <= self.roi_timeout and roi[1].width and roi[1].height:
            r = roi[1]
            box = PersonBox.around(r.x_offset, r.y_offset, r.x_offset + r.width, r.y_offset + r.height)
        elif centre is not None:
            box = PersonBox.from_radar(centre, camera, mount)
        hint = None if centre is None else mount.to_camera(centre)
        pose = self.backend.estimate(image[None], camera, [box], [hint])[0]
        if pose is None:
            self.counts["no_person"] += 1
            self.stats.handled(seconds=time.perf_counter() - started,
                               latency=self.get_clock().now().nanoseconds / 1e9 - stamp)
            return
        positions, rotations = mount.to_radar(pose.positions, pose.rotations)
        if not (np.isfinite(positions).all() and np.isfinite(rotations).all()):
            self._drop("non_finite_pose", "the teacher gave NaN or inf")
            return
        quaternions = Rotation.from_matrix(rotations).as_quat()
        header = Header(stamp=msg.header.stamp, frame_id=self.radar_frame)
        self.skeleton.publish(skeleton_to_pose_array(positions, quaternions, header))
        if self.publish_tf:
            self.tf.publish(skeleton_to_tf(positions, quaternions, SMPL_24, header, self.body_id))
            self.markers.publish(skeleton_to_markers(positions, SMPL_24, header, body_index=1, namespace="teacher",
                                                     color=(0.9, 0.5, 0.1, 1.0)))
        now = self.get_clock().now().nanoseconds / 1e9
        self.stats.handled(seconds=time.perf_counter() - started, latency=now - stamp)

    def _mount(self, frame_id: str, statics: list) -> CameraMount:
        mount = mount_from_transforms(statics, self.radar_frame, frame_id) if frame_id and statics else None
        source = f"/tf_static {self.radar_frame} -> {frame_id}" if mount is not None else "parameters"
        if source != self.mount_source:
            self.mount_source = source
            self.get_logger().info(f"camera pose from {source}")
        return mount or self.parameter_mount

    def _mount_transform(self) -> TransformStamped:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.radar_frame)
        return transform_stamped(header, self.camera_frame, self.parameter_mount.translation,
                                 self.parameter_mount.quaternion)

    def _drop(self, kind: str, message: str) -> None:
        self.stats.dropped()
        self.diagnostics.problem(kind, f"{message}; image dropped")

    def _status(self) -> tuple[int, str, dict]:
        report = self.stats.report()
        with self._lock:
            counts = dict(self.counts)
        values = {**report.values, **counts, "inference_ms": 1000 * report.per_frame("seconds"),
                  "latency_ms": 1000 * report.per_frame("latency"), "backend": self.backend_name,
                  "camera_pose": self.mount_source}
        return report.level, report.message(f"{values['latency_ms']:.0f} ms latency"), values

    def destroy_node(self) -> None:
        # Also called on a node whose __init__ failed part way (rclpy cleans up every node it made).
        self._stop = True
        if hasattr(self, "_worker"):
            self._wake.set()
            self._worker.join(timeout=5.0)
        close = getattr(getattr(self, "backend", None), "close", None)
        if close is not None:
            close()
        super().destroy_node()


def main(args=None) -> None:
    spin_node(TeacherNode, "teacher", args)


if __name__ == "__main__":
    main()
