"""The main job on its built-in default: a synthetic bag played through the ROS 2 nodes.

1. Simulate: one person doing a random program in front of a simulated TI radar, written as a
   rosbag2 bag (radar clouds, teacher and ground-truth skeletons, the radar's mount).
2. Read the bag back: topics, counts, radar frames paired with teacher labels by time.
3. Play it (bag_player, its own process) into radar_ingest (its own process); this process
   listens over DDS like any other node would, pairs each cleaned cloud with the ground truth
   played beside it and says how well the person was found.

Later stages (student, physics) join here as they are built.
"""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from ros2_radar_pose import topics
from ros2_radar_pose.data.bags import BagReader, BagWriter
from ros2_radar_pose.data.sync import synchronized
from ros2_radar_pose.data.synthetic import generate_sessions, write_sessions
from ros2_radar_pose.processes import NodeProcess
from ros2_radar_pose.radar.simulator import BODY
from ros2_radar_pose.resources import share_file
from ros2_radar_pose.ros.pointcloud2 import pointcloud2_to_array
from ros2_radar_pose.ros.qos import DIAGNOSTICS, SENSOR_PUBLICATION
from ros2_radar_pose.ros.skeleton import pose_array_to_skeleton
from ros2_radar_pose.ros.time import to_nanoseconds

ANY_PUBLISHER = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)


class Monitor(Node):
    """Collects radar_ingest's clouds and the played ground truth, keyed by stamp, and diagnostics."""

    def __init__(self):
        super().__init__("radar_pose_main_job")
        self.clouds: dict[int, np.ndarray] = {}
        self.truth: dict[int, np.ndarray] = {}
        self.arrivals: dict[str, dict[int, float]] = {"cloud": {}, "truth": {}}
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.create_subscription(PointCloud2, topics.POINTS, self.on_cloud, SENSOR_PUBLICATION)
        self.create_subscription(PoseArray, topics.GROUND_TRUTH_SKELETON, self.on_truth, ANY_PUBLISHER)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, DIAGNOSTICS)

    def on_cloud(self, msg: PointCloud2) -> None:
        stamp = to_nanoseconds(msg.header.stamp)
        self.arrivals["cloud"][stamp] = time.monotonic()
        points = pointcloud2_to_array(msg)
        self.clouds[stamp] = np.stack([points["x"], points["y"], points["z"]], axis=1)

    def on_truth(self, msg: PoseArray) -> None:
        stamp = to_nanoseconds(msg.header.stamp)
        self.arrivals["truth"][stamp] = time.monotonic()
        self.truth[stamp] = pose_array_to_skeleton(msg)[0]

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            values["message"] = status.message
            self.diagnostics[status.name.split(":")[0].strip()] = values


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def simulate(path: Path, seconds: float, fps: float, seed: int) -> list:
    start = time.perf_counter()
    sessions = list(generate_sessions(1, seconds / 60.0, seed, fps))
    with BagWriter(path, overwrite=True) as writer:
        counts = write_sessions(writer, sessions)
    elapsed = time.perf_counter() - start
    session = sessions[0]
    points = np.array([len(c) for c in session.clouds])
    body = np.array([np.mean(lab == BODY) if len(lab) else 1.0 for lab in session.cloud_labels])
    labelled = session.teacher_labelled
    error = np.linalg.norm(session.teacher_positions[labelled] - session.truth_positions[labelled], axis=-1)
    segments = " -> ".join(dict.fromkeys(info.name for info in session.motion.segments))
    _table(f"1. simulated {path.name}", [
        ("subject", f"height {session.height:.2f} m, betas {[round(float(b), 2) for b in session.motion.betas]}"),
        ("motion program", segments),
        ("radar frames", f"{len(session)} at {fps:g} Hz; points per frame median {np.median(points):.0f} "
                         f"(p5 {np.percentile(points, 5):.0f}, p95 {np.percentile(points, 95):.0f}); "
                         f"{np.mean(body) * 100:.0f}% from the body, the rest clutter, ghosts, false alarms"),
        ("teacher labels", f"{labelled.sum()} of {len(session)} frames; error vs truth median "
                           f"{np.median(error) * 100:.1f} cm per joint"),
        ("messages", ", ".join(f"{t} {n}" for t, n in counts.items())),
        ("time", f"{elapsed:.1f} s ({len(session) / fps / elapsed:.0f}x real time)"),
    ])
    return sessions


def read_back(path: Path) -> None:
    with BagReader(path) as reader:
        pairs = list(synchronized(reader))
        info = reader.topics
    teacher = sum(p.skeletons[topics.TEACHER_SKELETON] is not None for p in pairs)
    _table("2. read back", [
        ("topics", ", ".join(f"{t} ({i.msgtype}, {i.count})" for t, i in info.items())),
        ("synchronised", f"{len(pairs)} radar frames, {teacher} with a teacher label within 50 ms"),
    ])


def run_main_job(seconds: float = 20.0, fps: float = 20.0, seed: int = 0, play_rate: float = 1.0,
                 domain_id: int | None = None, workdir: Path | None = None) -> int:
    """Simulate, read back, play through radar_ingest; print each stage; 0 when all went through."""
    domain_id = random.SystemRandom().randint(1, 100) if domain_id is None else domain_id
    workdir = Path(workdir or tempfile.mkdtemp(prefix="radar_pose_main_job_"))
    workdir.mkdir(parents=True, exist_ok=True)
    bag = workdir / "synthetic_bag"
    sessions = simulate(bag, seconds, fps, seed)
    read_back(bag)
    frames = len(sessions[0])

    rclpy.init(domain_id=domain_id)
    monitor = Monitor()
    env = {"ROS_DOMAIN_ID": str(domain_id)}
    params = ["--params-file", str(share_file("config/radar_pose.yaml"))]
    ingest = NodeProcess("ros2_radar_pose.nodes.radar_ingest", params, workdir / "radar_ingest.log", env=env)
    # play only once radar_ingest's output reaches this process (discovery takes a moment)
    ready_by = time.monotonic() + 30.0
    while monitor.count_publishers(topics.POINTS) < 1 and ingest.alive() and time.monotonic() < ready_by:
        rclpy.spin_once(monitor, timeout_sec=0.05)
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        rclpy.spin_once(monitor, timeout_sec=0.05)
    # radar_ingest on /radar/points and this monitor on the ground truth: two subscriptions to wait for
    player = NodeProcess("ros2_radar_pose.nodes.bag_player", [
        *params, "-p", f"bag:={bag}", "-p", f"rate:={play_rate}", "-p", "wait_subscribers:=2"],
        workdir / "bag_player.log", env=env)
    print(f"\n3. playing the bag through radar_ingest at {play_rate:g}x (ROS domain {domain_id}, logs in {workdir})")
    try:
        deadline = time.monotonic() + frames / fps / play_rate + 30.0
        next_report = time.monotonic() + 2.0
        while player.alive() and time.monotonic() < deadline:
            rclpy.spin_once(monitor, timeout_sec=0.05)
            if time.monotonic() >= next_report:
                next_report += 2.0
                print(f"  {len(monitor.clouds):4d}/{frames} clouds from radar_ingest, "
                      f"{len(monitor.truth):4d} ground-truth skeletons")
        end = time.monotonic() + 1.5            # the last frames and one more diagnostics period
        while time.monotonic() < end:
            rclpy.spin_once(monitor, timeout_sec=0.05)
    finally:
        player_code = player.stop()
        ingest_code = ingest.stop()
        monitor.destroy_node()
        rclpy.try_shutdown()
    return _summary(monitor, frames, player_code, ingest_code, player, ingest)


def _summary(monitor: Monitor, frames: int, player_code: int, ingest_code: int, player: NodeProcess,
             ingest: NodeProcess) -> int:
    stamps = sorted(set(monitor.clouds) & set(monitor.truth))
    errors = []
    for stamp in stamps:
        cloud, pelvis = monitor.clouds[stamp], monitor.truth[stamp][0]
        errors.append(np.linalg.norm(cloud[:, :2].mean(axis=0) - pelvis[:2]) if len(cloud) else np.nan)
    errors = np.array(errors)
    tracked = np.isfinite(errors)
    # the player sends a frame's cloud and its ground truth together: the cloud's delay behind its
    # ground truth is the time radar_ingest took, DDS included
    latencies = np.array([monitor.arrivals["cloud"][s] - monitor.arrivals["truth"][s] for s in stamps]) * 1000
    diag = monitor.diagnostics.get("radar_ingest", {})
    _table("radar_ingest on the played bag:", [
        ("clouds received", f"{len(monitor.clouds)} / {frames}"),
        ("points per frame in -> out", f"{diag.get('points_in_per_frame', '?')} -> "
                                       f"{diag.get('points_out_per_frame', '?')} (clutter and ghosts removed)"),
        ("person found", f"{tracked.mean() * 100 if len(errors) else 0:.0f}% of frames"),
        ("centre error vs ground truth", f"median {np.nanmedian(errors) * 100:.1f} cm, p95 "
                                         f"{np.nanpercentile(errors, 95) * 100:.1f} cm" if tracked.any() else "n/a"),
        ("latency through radar_ingest", f"p50 {np.percentile(latencies, 50):.1f} ms, p95 "
                                         f"{np.percentile(latencies, 95):.1f} ms" if len(latencies) else "n/a"),
        ("exit codes", f"bag_player {player_code} (end of bag), radar_ingest {ingest_code} (Ctrl-C)"),
    ])
    ok = (len(monitor.clouds) >= 0.98 * frames and player_code == 0 and ingest_code == 0
          and tracked.mean() > 0.8 and np.nanmedian(errors) < 0.25)
    if not ok:
        print("\nFAILED: the played bag did not come through radar_ingest as it should. Logs:\n"
              f"--- bag_player\n{player.output()[-2000:]}\n--- radar_ingest\n{ingest.output()[-2000:]}")
        return 1
    print("\nOK: the synthetic bag was written, read back, played over DDS and the person was found in it.")
    return 0
