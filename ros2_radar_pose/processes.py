"""Node processes started and stopped from Python (the demo, tests, benchmarks)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class NodeProcess:
    """A node run as its own process: ``python -m <module> --ros-args ...``.

    Output goes to ``log`` (a file) so a chatty node never blocks on a full pipe. ``stop`` sends
    SIGINT, as Ctrl-C would, and kills the process if it has not ended after ``grace`` seconds.
    """

    def __init__(self, module: str, ros_args: list[str], log: Path, env: dict[str, str] | None = None,
                 command: list[str] | None = None):
        self.log_path = Path(log)
        self._log = self.log_path.open("wb")
        self.command = command or [sys.executable, "-m", module]
        self.process = subprocess.Popen([*self.command, "--ros-args", *ros_args], stdout=self._log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 5.0) -> int:
        """End the process like Ctrl-C; returns its exit code."""
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
