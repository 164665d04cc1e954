"""Node processes started and stopped from Python (the demo, tests, benchmarks)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


class NodeProcess:
    """A node run as its own process: ``python -m <module> --ros-args ...``.

    Output goes to ``log`` (a file) so a chatty node never blocks on a full pipe. ``stop`` sends
    SIGINT, as Ctrl-C would, and kills the process if it has not ended after ``grace`` seconds.
    With ``respawn`` a process that ends by itself is started again after ``respawn_delay``
    seconds, as ``ros2 launch`` does for a node with ``respawn="true"``; ``respawns`` counts them.
    """

    def __init__(self, module: str, ros_args: list[str], log: Path, env: dict[str, str] | None = None,
                 command: list[str] | None = None, respawn: bool = False, respawn_delay: float = 1.0):
        self.log_path = Path(log)
        self._log = self.log_path.open("wb")
        self.command = command or [sys.executable, "-m", module]
        self._argv = [*self.command, "--ros-args", *ros_args]
        self._env = {**os.environ, **(env or {})}
        self.respawns = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.process = self._spawn()
        self._watcher = None
        if respawn:
            self._watcher = threading.Thread(target=self._watch, args=(respawn_delay,), daemon=True)
            self._watcher.start()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self._argv, stdout=self._log, stderr=subprocess.STDOUT, env=self._env)

    def _watch(self, delay: float) -> None:
        while not self._stopping.is_set():
            code = self.process.wait()
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._log.write(f"\n[respawn] the process ended with {code}; started again\n".encode())
                self._log.flush()
                self.process = self._spawn()
                self.respawns += 1

    def alive(self) -> bool:
        return self.process.poll() is None

    def node_pid(self) -> int | None:
        """The process that runs the node: the keeper's child (ros/keeper.py), or the started
        process itself when it has none (``RADAR_POSE_KEEPER=0``, or between a crash and the
        keeper's fork); None once the started process has ended."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return pid if self.alive() else None
        return int(children[0]) if children else pid

    def stop(self, grace: float = 5.0) -> int:
        """End the process like Ctrl-C (and respawning); returns its exit code."""
        with self._lock:
            self._stopping.set()
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        """What the process has printed so far."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_graph(workdir: Path, env: dict[str, str], ros_args: list[str], checkpoint: Path,
                respawn: bool = False, respawn_delay: float = 1.0) -> dict[str, NodeProcess]:
    """radar_ingest -> student -> physics, each its own process, as radar_pose.launch.xml starts them
    (the student leaves TF to physics; ``respawn`` as the launch file's); logs in ``workdir``/NAME.log."""
    def start(name: str, *extra: str) -> NodeProcess:
        return NodeProcess(f"ros2_radar_pose.nodes.{name}", [*ros_args, *extra], Path(workdir) / f"{name}.log",
                           env=env, respawn=respawn, respawn_delay=respawn_delay)
    return {"radar_ingest": start("radar_ingest"),
            "student": start("student", "-p", f"checkpoint:={checkpoint}", "-p", "publish_tf:=false"),
            "physics": start("physics")}
