"""The main job on its built-in default: a synthetic session through the whole graph.

1. Simulate: one person doing a random program in front of a simulated TI radar, written as a
   rosbag2 bag (radar clouds, teacher and ground-truth skeletons, the radar's mount).
2. Read the bag back: topics, counts, radar frames paired with teacher labels by time.
3. Play it (bag_player) through radar_ingest -> student -> physics, each its own process, as on a
   robot. The student is the checkpoint the project ships (models/student_sim.pt, trained on
   synthetic sessions by tools/train_shipped_student.sh) unless another is given. This process
   listens over DDS like RViz would, records every stage's output to a bag and writes a report:
   accuracy against the ground truth, physical plausibility, latency per stage and end to end
   (report.md, report.json, report.png).
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
from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage

from ros2_radar_pose import topics
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.data.bags import BagReader, BagWriter
from ros2_radar_pose.data.sync import synchronized
from ros2_radar_pose.data.synthetic import generate_sessions, write_sessions
from ros2_radar_pose.graph_report import ESTIMATES, GraphRun, write_report
from ros2_radar_pose.physics.humanoid import BodyShape
from ros2_radar_pose.physics.tracker import FloorFrame
from ros2_radar_pose.processes import NodeProcess, start_graph
from ros2_radar_pose.radar.simulator import BODY, RadarSimConfig
from ros2_radar_pose.resources import SHIPPED_STUDENT, share_file
from ros2_radar_pose.ros.dds import use_discovery_profile
from ros2_radar_pose.ros.pointcloud2 import pointcloud2_to_array
from ros2_radar_pose.ros.qos import DIAGNOSTICS, SENSOR_PUBLICATION, TF
from ros2_radar_pose.ros.skeleton import pose_array_to_skeleton
from ros2_radar_pose.ros.time import to_nanoseconds

# The ground truth the player re-offers from the demo's own bag (reliable): every frame's truth is
# the yardstick, so none may be lost on the way, as best effort did on a busy machine.
GROUND_TRUTH = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
# What the listener records: each stage's output, as a robot's `ros2 bag record` would.
RECORDED = {topics.POINTS: "sensor_msgs/msg/PointCloud2", topics.STUDENT_SKELETON: "geometry_msgs/msg/PoseArray",
            topics.SKELETON: "geometry_msgs/msg/PoseArray", topics.TF: "tf2_msgs/msg/TFMessage"}
ROOT_FRAME = "body_0"
MAX_MPJPE_CM = 40.0        # the demo fails above this: the graph is broken, not merely inaccurate


class Monitor(Node):
    """Listens to every stage, keyed by the radar frame's stamp: arrival times, clouds, skeletons;
    records what it hears into ``recorder``; keeps the latest diagnostics of each node."""

    def __init__(self, recorder: BagWriter):
        super().__init__("radar_pose_main_job")
        self.recorder = recorder
        self.clouds: dict[int, np.ndarray] = {}
        self.skeletons: dict[str, dict[int, np.ndarray]] = {"truth": {}, "student": {}, "refined": {}}
        self.arrivals: dict[str, dict[int, float]] = {k: {} for k in ("truth", "cloud", "student", "refined", "tf")}
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.create_subscription(PointCloud2, topics.POINTS, self.on_cloud, SENSOR_PUBLICATION)
        self.create_subscription(PoseArray, topics.GROUND_TRUTH_SKELETON, self.on_skeleton("truth"), GROUND_TRUTH)
        self.create_subscription(PoseArray, topics.STUDENT_SKELETON, self.on_skeleton("student"), SENSOR_PUBLICATION)
        self.create_subscription(PoseArray, topics.SKELETON, self.on_skeleton("refined"), SENSOR_PUBLICATION)
        self.create_subscription(TFMessage, topics.TF, self.on_tf, TF)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, DIAGNOSTICS)

    def _record(self, topic: str, msg, stamp: int) -> None:
        self.recorder.write_raw(topic, RECORDED[topic], stamp, serialize_message(msg))

    def on_cloud(self, msg: PointCloud2) -> None:
        stamp = to_nanoseconds(msg.header.stamp)
        self.arrivals["cloud"][stamp] = time.monotonic()
        points = pointcloud2_to_array(msg)
        self.clouds[stamp] = np.stack([points["x"], points["y"], points["z"]], axis=1)
        self._record(topics.POINTS, msg, stamp)

    def on_skeleton(self, name: str):
        topic = {"student": topics.STUDENT_SKELETON, "refined": topics.SKELETON}.get(name)

        def callback(msg: PoseArray) -> None:
            stamp = to_nanoseconds(msg.header.stamp)
            self.arrivals[name][stamp] = time.monotonic()
            self.skeletons[name][stamp] = pose_array_to_skeleton(msg)[0]
            if topic is not None:
                self._record(topic, msg, stamp)
        return callback

    def on_tf(self, msg: TFMessage) -> None:
        for transform in msg.transforms:
            if transform.child_frame_id == ROOT_FRAME:
                stamp = to_nanoseconds(transform.header.stamp)
                self.arrivals["tf"].setdefault(stamp, time.monotonic())
                self._record(topics.TF, msg, stamp)
                return

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            values["message"] = status.message
            self.diagnostics[status.name.split(":")[0].strip()] = values

    def graph_run(self) -> GraphRun:
        """What was heard, frame by frame over the ground truth's stamps."""
        stamps = sorted(self.skeletons["truth"])
        def stacked(name: str) -> np.ndarray:  # noqa: E306
            nan = np.full((24, 3), np.nan)
            return np.stack([self.skeletons[name].get(s, nan) for s in stamps]) if stamps else np.zeros((0, 24, 3))
        arrivals = {k: np.array([v.get(s, np.nan) for s in stamps], dtype=np.float64)
                    for k, v in self.arrivals.items()}
        return GraphRun(np.array(stamps, dtype=np.float64) / 1e9, stacked("truth"),
                        {name: stacked(name) for name in ESTIMATES}, arrivals)


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


STAGE_OUTPUTS = {"radar_ingest": topics.POINTS, "student": topics.STUDENT_SKELETON, "physics": topics.SKELETON}


def run_main_job(seconds: float = 20.0, fps: float = 20.0, seed: int = 0, play_rate: float = 1.0,
                 domain_id: int | None = None, workdir: Path | None = None, checkpoint: Path | None = None) -> int:
    """Simulate, read back, play through the whole graph, record and report; 0 when all went through."""
    domain_id = random.SystemRandom().randint(1, 100) if domain_id is None else domain_id
    workdir = Path(workdir or tempfile.mkdtemp(prefix="radar_pose_main_job_"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(checkpoint) if checkpoint else share_file(SHIPPED_STUDENT)
    bag = workdir / "synthetic_bag"
    sessions = simulate(bag, seconds, fps, seed)
    read_back(bag)
    frames = len(sessions[0])

    use_discovery_profile()
    rclpy.init(domain_id=domain_id)
    recorder = BagWriter(workdir / "outputs_bag", overwrite=True)
    monitor = Monitor(recorder)
    env = {"ROS_DOMAIN_ID": str(domain_id)}
    params = ["--params-file", str(share_file("config/radar_pose.yaml"))]
    print(f"\n3. starting radar_ingest -> student -> physics (student {checkpoint}; ROS domain {domain_id}, "
          f"logs in {workdir})")
    nodes = start_graph(workdir, env, params, checkpoint)
    player = None
    codes: dict[str, int] = {}
    try:
        # play only once every stage's output reaches this process (discovery takes a moment)
        ready = lambda: all(monitor.count_publishers(t) >= 1 for t in STAGE_OUTPUTS.values())  # noqa: E731
        ready_by = time.monotonic() + 60.0
        while not ready() and all(n.alive() for n in nodes.values()) and time.monotonic() < ready_by:
            rclpy.spin_once(monitor, timeout_sec=0.05)
        if not ready():
            return _failed("the graph did not come up", nodes)
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            rclpy.spin_once(monitor, timeout_sec=0.05)
        # radar_ingest on /radar/points and this monitor on the ground truth: two subscriptions to wait for
        player = NodeProcess("ros2_radar_pose.nodes.bag_player", [
            *params, "-p", f"bag:={bag}", "-p", f"rate:={play_rate}", "-p", "wait_subscribers:=2"],
            workdir / "bag_player.log", env=env)
        print(f"   playing the bag at {play_rate:g}x")
        deadline = time.monotonic() + frames / fps / play_rate + 30.0
        next_report = time.monotonic() + 2.0
        while player.alive() and time.monotonic() < deadline:
            rclpy.spin_once(monitor, timeout_sec=0.05)
            if time.monotonic() >= next_report:
                next_report += 2.0
                print(f"  {len(monitor.clouds):4d}/{frames} clouds, {len(monitor.skeletons['student']):4d} student "
                      f"and {len(monitor.skeletons['refined']):4d} refined skeletons")
        end = time.monotonic() + 2.0            # the last frames and one more diagnostics period
        while time.monotonic() < end:
            rclpy.spin_once(monitor, timeout_sec=0.05)
    finally:
        if player is not None:
            codes["bag_player"] = player.stop()
        for name, node in nodes.items():
            codes[name] = node.stop()
        recorder.close()
        monitor.destroy_node()
        rclpy.try_shutdown()
    return _summary(monitor, frames, codes, workdir, sessions[0], {**nodes, "bag_player": player})


def _failed(what: str, nodes: dict[str, NodeProcess]) -> int:
    print(f"\nFAILED: {what}. Logs:")
    for name, node in nodes.items():
        if node is not None:
            print(f"--- {name}\n{node.output()[-2000:]}")
    return 1


def _summary(monitor: Monitor, frames: int, codes: dict[str, int], workdir: Path, session,
             nodes: dict[str, NodeProcess]) -> int:
    run = monitor.graph_run()
    radar = RadarSimConfig()
    floor = FloorFrame(tuple(radar.mount_translation), tuple(radar.mount_rpy))
    scores, png = write_report(workdir / "report", run, floor, BodyShape.of(AnthropometricBody()).clearance,
                               title=f"Radar pose graph on a {frames / 20:.0f} s synthetic session")
    errors = []
    for stamp, truth in monitor.skeletons["truth"].items():
        cloud = monitor.clouds.get(stamp)
        if cloud is not None:
            errors.append(np.linalg.norm(cloud[:, :2].mean(axis=0) - truth[0, :2]) if len(cloud) else np.nan)
    errors = np.array(errors)
    found = float(np.isfinite(errors).mean()) if len(errors) else 0.0
    counts = {name: len(monitor.skeletons[name]) for name in ("student", "refined")}
    accuracy, plausible, latency = scores["accuracy"], scores["plausibility"], scores["latency"]
    diag = monitor.diagnostics
    _table("4. what came through the graph", [
        ("clouds from radar_ingest", f"{len(monitor.clouds)} / {frames}; person found in {found * 100:.0f}% "
                                     f"(points per frame {diag.get('radar_ingest', {}).get('points_in_per_frame', '?')}"
                                     f" -> {diag.get('radar_ingest', {}).get('points_out_per_frame', '?')})"),
        ("student skeletons", f"{counts['student']} / {frames}"),
        ("refined skeletons and TF", f"{counts['refined']} / {frames}, TF for {len(monitor.arrivals['tf'])}"),
        ("exit codes", ", ".join(f"{name} {code}" for name, code in codes.items())
                       + " (0: the bag ended, the nodes stopped on Ctrl-C)"),
    ])
    rows = [(f"{name} MPJPE / PA-MPJPE / root", f"{a['mpjpe_cm']:.1f} / {a['pa_mpjpe_cm']:.1f} / {a['root_cm']:.1f} cm "
             f"over {a['frames']} frames") for name, a in accuracy.items() if a["frames"]]
    rows += [(f"{name} skating / max under floor / jitter", f"{p['skating_mm']:.1f} mm / {p['penetration_max_mm']:.1f} "
              f"mm / {p['jitter_mm']:.1f} mm") for name, p in plausible.items()]
    rows += [(f"latency {stage.replace('_', ' ')}", f"p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, "
              f"p99 {lat['p99_ms']:.1f} ms") for stage, lat in latency.items() if lat["frames"]]
    _table("5. report (against the ground truth)", rows)
    print(f"\n   {workdir / 'report' / 'report.md'}, report.json and {png.name}; every stage's output "
          f"recorded in {workdir / 'outputs_bag'}")
    refined = accuracy["refined"]
    ok = (len(monitor.clouds) >= 0.98 * frames and counts["refined"] >= 0.95 * frames and found > 0.8
          and all(code == 0 for code in codes.values()) and refined["frames"] and refined["mpjpe_cm"] < MAX_MPJPE_CM)
    if not ok:
        return _failed("the session did not come through the graph as it should", nodes)
    print("\nOK: the synthetic session went through radar_ingest, the student and physics over DDS, "
          "and the skeleton followed the person.")
    return 0
