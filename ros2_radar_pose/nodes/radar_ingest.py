"""radar_ingest: raw mmWave clouds in, the tracked person's cloud out.

Input: ``radar/points`` (PointCloud2 of any layout, e.g. ti_mmwave_rospkg) or, with
``source: uart``, the TI UART byte stream read straight from the radar (or from a recorded
file). Output: ``radar_pose/points`` (float32 x, y, z, velocity, intensity; the input's stamp;
the input's frame, or ``frame_id`` when the input has none) and ``/diagnostics``.
"""
from __future__ import annotations

import threading
import time
import traceback

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from ros2_radar_pose.radar.fields import FieldMappingError
from ros2_radar_pose.radar.preprocess import CloudPreprocessor, PreprocessConfig, RigidTransform
from ros2_radar_pose.radar.ti_uart import (
    DEVICES,
    FileByteSource,
    SerialRadar,
    TIFrameParser,
    iter_frames,
    ti_to_ros_axes,
)
from ros2_radar_pose.ros.diagnostics import FrameStats, NodeDiagnostics
from ros2_radar_pose.ros.params import ParameterError, declare, declare_dataclass, declare_vector
from ros2_radar_pose.ros.pointcloud2 import CloudDecoder, PointCloudError, cloud_to_pointcloud2
from ros2_radar_pose.ros.qos import SENSOR_PUBLICATION, SENSOR_SUBSCRIPTION
from ros2_radar_pose.ros.run import spin_node, wait_for_subscribers
from ros2_radar_pose.ros.time import to_seconds

PARSER_PROBLEMS = ("frames_truncated", "frames_invalid", "point_count_mismatches", "side_info_mismatches")


class RadarIngestNode(Node):
    def __init__(self, **node_options):
        super().__init__("radar_ingest", **node_options)
        self._stop = threading.Event()
        self._uart_thread: threading.Thread | None = None
        param = lambda name, default, description="": declare(self, name, default, description)  # noqa: E731
        self.source = param("source", "topic", "topic: subscribe to radar/points; uart: read the TI UART "
                            "stream (uart.* parameters)")
        if self.source not in ("topic", "uart"):
            raise ParameterError(f"parameter 'source' must be 'topic' or 'uart', got {self.source!r}")
        self.frame_id = param("frame_id", "radar_link", "frame of clouds whose frame_id is empty, and of "
                              "the UART stream")
        max_points = param("max_points", 20000, "clouds with more points are dropped as malformed")
        self.stale_after = param("stale_after", 2.0, "seconds without input before diagnostics say ERROR")
        self.decode = CloudDecoder({name: param(f"fields.{name}", "", f"input field read as {name} (empty: "
                                                "the usual names)") for name in ("velocity", "intensity")},
                                   max_points)
        self.uart = {
            "replay_file": param("uart.replay_file", "", "read this recorded byte stream instead of the radar"),
            "replay_rate": param("uart.replay_rate", 20.0, "frames per second when replaying (0: as read)"),
            "replay_loop": param("uart.replay_loop", False, "replay the file again and again"),
            "replay_wait_subscribers": param("uart.replay_wait_subscribers", 0, "start the replay 1 s after "
                                             "radar_pose/points has this many subscribers"),
            "device": param("uart.device", "auto", "auto, xwr14xx, xwr16xx, xwr18xx or xwr68xx"),
            "ti_to_ros_axes": param("uart.ti_to_ros_axes", True, "turn TI axes (y forward) into ROS axes"),
            "cli_port": param("uart.cli_port", "/dev/ttyUSB0", "radar CLI port (115200 baud)"),
            "data_port": param("uart.data_port", "/dev/ttyUSB1", "radar data port (921600 baud)"),
            "config_file": param("uart.config_file", "", "mmWave .cfg sent on the CLI port (empty: the radar "
                                 "is already configured)"),
        }
        if self.uart["device"] not in DEVICES:
            raise ParameterError(f"parameter 'uart.device' must be one of {', '.join(DEVICES)}, "
                                 f"got {self.uart['device']!r}")
        self.target_frame = param("transform.target_frame", "", "express clouds in this frame (empty: the "
                                  "sensor frame)")
        translation = declare_vector(self, "transform.translation", [0.0, 0.0, 0.0], "sensor origin in target_frame, m")
        rpy = declare_vector(self, "transform.rpy", [0.0, 0.0, 0.0], "sensor roll, pitch, yaw in target_frame, rad")
        transform = None
        if self.target_frame:
            transform = RigidTransform(Rotation.from_euler("xyz", rpy).as_matrix(), np.array(translation))
        try:
            config = declare_dataclass(self, "preprocess", PreprocessConfig)
        except ValueError as error:
            raise ParameterError(str(error)) from None
        self.preprocessor = CloudPreprocessor(config, transform)

        self.stats = FrameStats(self.stale_after)
        self.publisher = self.create_publisher(PointCloud2, "radar_pose/points", SENSOR_PUBLICATION)
        self.diagnostics = NodeDiagnostics(self, "radar ingest", self._status, hardware_id=self.frame_id,
                                           period=param("diagnostics_period", 1.0))
        if self.source == "topic":
            self.create_subscription(PointCloud2, "radar/points", self.on_cloud, SENSOR_SUBSCRIPTION)
            origin = self.resolve_topic_name("radar/points")
        else:
            self._uart_thread = threading.Thread(target=self._read_uart, name="uart", daemon=True)
            self._uart_thread.start()
            origin = self.uart["replay_file"] or self.uart["data_port"]
        self.get_logger().info(f"reading {origin}, publishing {self.publisher.topic_name}")

    # -- input ------------------------------------------------------------------------------

    def on_cloud(self, msg: PointCloud2) -> None:
        """A PointCloud2 from the radar driver."""
        try:
            cloud = self.decode(msg)
        except PointCloudError as error:
            self._drop(error.kind, str(error))
            return
        except FieldMappingError as error:
            self._drop("missing_field", str(error))
            return
        except Exception:  # a bug must cost one frame, not the node
            self._drop("internal_error", traceback.format_exc())
            return
        stamp = msg.header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:
            self.diagnostics.problem("zero_stamp", "the input's stamp is 0; the receive time is used")
            stamp = self.get_clock().now().to_msg()
        self._publish(cloud, stamp, msg.header.frame_id or self.frame_id)

    def _read_uart(self) -> None:
        """Reader thread: bytes from the radar (or a recording) -> frames -> published clouds."""
        uart = self.uart
        replay, rate = uart["replay_file"], uart["replay_rate"]
        parser = TIFrameParser(uart["device"])
        reported = dict.fromkeys(PARSER_PROBLEMS, 0)
        if replay and not wait_for_subscribers(self.publisher.get_subscription_count,
                                               uart["replay_wait_subscribers"], self._stop):
            return
        while not self._stop.is_set():
            try:
                source = (FileByteSource(replay, loop=uart["replay_loop"]) if replay else
                          SerialRadar(uart["cli_port"], uart["data_port"], uart["config_file"] or None))
            except Exception as error:  # a missing file or device: say so, retry, keep running
                self.diagnostics.problem("uart_open", f"cannot open {replay or uart['data_port']}: {error}")
                self._stop.wait(1.0)
                continue
            next_due = time.monotonic()
            try:
                for frame in iter_frames(source, parser, stop=self._stop.is_set):
                    for kind in PARSER_PROBLEMS:
                        count = getattr(parser.stats, kind)
                        if count > reported[kind]:
                            reported[kind] = count
                            self.diagnostics.problem(kind, parser.stats.last_error_by_kind.get(kind, ""))
                    if replay and rate > 0:
                        # Pace to the recorded rate; after a stall, catch up by at most a second.
                        next_due = max(next_due + 1.0 / rate, time.monotonic() - 1.0)
                        self._stop.wait(max(0.0, next_due - time.monotonic()))
                    cloud = ti_to_ros_axes(frame.points) if uart["ti_to_ros_axes"] else frame.points
                    self._publish(cloud, self.get_clock().now().to_msg(), self.frame_id)
            except Exception as error:  # an unplugged radar: report and reopen
                self.diagnostics.problem("uart_read", f"{type(error).__name__}: {error}")
                self._stop.wait(1.0)
            finally:
                source.close()
            if replay and not uart["replay_loop"]:
                self.get_logger().info(f"replay of {replay} finished: {parser.stats.frames_ok} frames, "
                                       f"{parser.stats.bytes_discarded} bytes discarded")
                return

    # -- output -----------------------------------------------------------------------------

    def _publish(self, cloud: np.ndarray, stamp: Time, frame_id: str) -> None:
        """``stamp`` goes out exactly as it came in: later stages and bags match frames by it."""
        try:
            result = self.preprocessor.process(cloud, to_seconds(stamp))
        except Exception:  # a bug must cost one frame, not the node
            self._drop("internal_error", traceback.format_exc())
            return
        if result.n_finite < result.n_input:
            self.diagnostics.problem("non_finite_points", f"{result.n_input - result.n_finite} of "
                                     f"{result.n_input} points have NaN or inf values; those points are dropped")
        header = Header(stamp=stamp, frame_id=self.target_frame or frame_id)
        self.publisher.publish(cloud_to_pointcloud2(result.cloud, header))
        self.stats.handled(points_in=result.n_input, points_out=len(result.cloud), empty=int(result.n_input == 0))

    def _drop(self, kind: str, message: str) -> None:
        self.stats.dropped()
        self.diagnostics.problem(kind, f"{message}; frame dropped")

    def _status(self) -> tuple[int, str, dict]:
        report = self.stats.report()
        values = {**report.values, "frames_empty": report.totals["empty"],
                  "points_in_per_frame": report.per_frame("points_in"),
                  "points_out_per_frame": report.per_frame("points_out"), "source": self.source}
        return report.level, report.message(f"{values['points_out_per_frame']:.1f} points/frame out"), values

    def destroy_node(self) -> None:
        self._stop.set()
        if self._uart_thread is not None:
            self._uart_thread.join(timeout=2.0)
        super().destroy_node()


def main(args=None) -> None:
    spin_node(RadarIngestNode, "radar_ingest", args)


if __name__ == "__main__":
    main()
