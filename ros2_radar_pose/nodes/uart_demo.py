"""The TI UART demo: a generated TI UART byte stream replayed through radar_ingest's own driver.

The radar_ingest node runs as its own process and reads the stream as it would read a radar's
data port; this process listens on radar_pose/points and /diagnostics over DDS, like any other
node would, and checks what comes out against what went in. (The main job, nodes/main_job.py,
plays a synthetic bag instead.)
"""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from ros2_radar_pose.processes import NodeProcess
from ros2_radar_pose.radar.demo_scene import make_demo_stream
from ros2_radar_pose.resources import share_file
from ros2_radar_pose.ros.pointcloud2 import pointcloud2_to_array
from ros2_radar_pose.ros.qos import DIAGNOSTICS, SENSOR_PUBLICATION
from ros2_radar_pose.ros.time import to_seconds


class Monitor(Node):
    """Collects the ingest node's clouds (centre, size, latency) and its diagnostics."""

    def __init__(self):
        super().__init__("radar_pose_demo")
        self.centres: list[np.ndarray] = []
        self.sizes: list[int] = []
        self.latencies: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self.create_subscription(PointCloud2, "radar_pose/points", self.on_cloud, SENSOR_PUBLICATION)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, DIAGNOSTICS)

    def on_cloud(self, msg: PointCloud2) -> None:
        self.latencies.append(self.get_clock().now().nanoseconds * 1e-9 - to_seconds(msg.header.stamp))
        points = pointcloud2_to_array(msg)
        xy = np.stack([points["x"], points["y"]], axis=1)
        self.centres.append(xy.mean(axis=0) if len(xy) else np.full(2, np.nan))
        self.sizes.append(len(points))

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("radar_ingest"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics["message"] = status.message


def run_uart_demo(seconds: float = 20.0, rate: float = 20.0, seed: int = 0, domain_id: int | None = None,
                  workdir: Path | None = None) -> int:
    """The UART path: a generated TI byte stream replayed by radar_ingest's own driver; 0 when every
    intact packet came through."""
    domain_id = random.SystemRandom().randint(1, 100) if domain_id is None else domain_id
    workdir = Path(workdir or tempfile.mkdtemp(prefix="radar_pose_demo_"))
    workdir.mkdir(parents=True, exist_ok=True)
    stream = make_demo_stream(seconds, rate, seed)
    stream_path = workdir / "ti_uart_stream.bin"
    stream_path.write_bytes(stream.data)
    expected = len(stream.truth)
    print(f"generated {stream_path}: {stream.n_packets} TI packets ({len(stream.data)} bytes) at {rate:g} Hz, "
          f"{len(stream.damaged)} damaged on purpose, {stream.garbage_bytes} garbage bytes")

    rclpy.init(domain_id=domain_id)
    monitor = Monitor()
    node = NodeProcess("ros2_radar_pose.nodes.radar_ingest", [
        "--params-file", str(share_file("config/radar_pose.yaml")),
        "-p", "source:=uart", "-p", f"uart.replay_file:={stream_path}", "-p", f"uart.replay_rate:={rate}",
        "-p", "uart.replay_wait_subscribers:=1"], workdir / "radar_ingest.log",
        env={"ROS_DOMAIN_ID": str(domain_id)})
    print(f"started radar_ingest (ROS domain {domain_id}, log {node.log_path}); replaying at {rate:g} Hz")
    try:
        deadline = time.monotonic() + seconds + 20.0
        next_report = time.monotonic() + 1.0
        while len(monitor.sizes) < expected and time.monotonic() < deadline and node.alive():
            rclpy.spin_once(monitor, timeout_sec=0.05)
            if time.monotonic() >= next_report:
                next_report += 1.0
                _progress(monitor, stream.truth, expected)
        end = time.monotonic() + 1.5            # one more diagnostics period
        while time.monotonic() < end:
            rclpy.spin_once(monitor, timeout_sec=0.05)
    finally:
        exit_code = node.stop()
        monitor.destroy_node()
        rclpy.try_shutdown()
    return _summary(monitor, stream, expected, exit_code, node)


def _progress(monitor: Monitor, truth: np.ndarray, expected: int) -> None:
    n = len(monitor.sizes)
    if n == 0:
        print("  waiting for radar_pose/points ...")
        return
    recent = slice(max(0, n - 20), n)
    errors = np.linalg.norm(np.array(monitor.centres[recent]) - truth[recent], axis=1)
    diag = monitor.diagnostics
    dropped = sum(int(diag.get(f"problems.frames_{kind}", 0)) for kind in ("truncated", "invalid"))
    print(f"  {n:4d}/{expected} clouds | points out {np.mean(monitor.sizes[recent]):5.1f}/frame | "
          f"person centre error {np.nanmean(errors) * 100:4.1f} cm | "
          f"latency {np.median(monitor.latencies[recent]) * 1000:4.1f} ms | damaged packets dropped {dropped}")


def _summary(monitor: Monitor, stream, expected: int, exit_code: int, node: NodeProcess) -> int:
    n = len(monitor.sizes)
    diag = monitor.diagnostics
    truncated = int(diag.get("problems.frames_truncated", 0))
    invalid = int(diag.get("problems.frames_invalid", 0))
    errors = np.linalg.norm(np.array(monitor.centres).reshape(-1, 2) - stream.truth[:n], axis=1)
    tracked = np.isfinite(errors)
    latencies = np.array(monitor.latencies) * 1000
    rows = [
        ("intact packets published", f"{n} / {expected}"),
        ("damaged packets dropped", f"{truncated + invalid} (truncated {truncated}, invalid {invalid}); "
                                    f"{len(stream.damaged)} were damaged"),
        ("points per frame in -> out", f"{diag.get('points_in_per_frame', '?')} -> "
                                       f"{diag.get('points_out_per_frame', '?')} (walls and ghosts removed)"),
        ("person tracked", f"{tracked.mean() * 100 if n else 0:.0f}% of frames"),
        ("person centre error", f"mean {np.nanmean(errors) * 100:.1f} cm, max {np.nanmax(errors) * 100:.1f} cm"
         if tracked.any() else "n/a"),
        ("latency, parse -> received", f"p50 {np.percentile(latencies, 50):.1f} ms, "
                                       f"p99 {np.percentile(latencies, 99):.1f} ms" if n else "n/a"),
        ("radar_ingest exit", f"code {exit_code} after Ctrl-C"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\nradar_ingest on the built-in stream:")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    ok = (n == expected and truncated + invalid == len(stream.damaged) and exit_code == 0
          and tracked.mean() > 0.9 and np.nanmean(errors) < 0.15)
    if not ok:
        print(f"\nFAILED: the ingest node did not give what the stream holds; its log:\n{node.output()[-3000:]}")
        return 1
    print("\nOK: every intact packet came through, damaged ones were dropped and counted, "
          "and the person was followed.")
    return 0

