"""trainer: trains the radar student from bags, as a ROS node (the same code as ``radar-pose train``).

Parameters: ``bags`` (required), ``out_dir``, and every training setting under its flat name
(``epochs``, ``lr``, ``student.dim``, ``augment.yaw_deg``, ...; config/radar_pose.yaml lists them
with their defaults). Training runs in a worker thread; the node publishes its progress on
``/diagnostics`` and as JSON on ``radar_pose/trainer/status`` (std_msgs/String, latched), writes
checkpoints into ``out_dir`` and exits when training ends: 0 when done, 1 when it failed (the
reason is logged and published). Ctrl-C stops training after a checkpoint that ``resume: true``
continues from.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import traceback

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import String

from ros2_radar_pose.data.bags import BagError
from ros2_radar_pose.ros.diagnostics import ERROR, OK, WARN, NodeDiagnostics
from ros2_radar_pose.ros.params import ParameterError, declare
from ros2_radar_pose.ros.qos import LATCHED_STATUS
from ros2_radar_pose.ros.run import SETTLE_AFTER_MATCH_S, raise_unless_shut_down
from ros2_radar_pose.student.checkpoint import CheckpointError
from ros2_radar_pose.train.trainer import Progress, TrainConfig, TrainingError, train


def _parameter_default(value):
    """ROS parameters have no None or empty-list type: '' and [''] stand for them."""
    if value is None:
        return ""
    if isinstance(value, list) and not value:
        return [""]
    return value


class TrainerNode(Node):
    def __init__(self, **node_options):
        super().__init__("trainer", **node_options)
        bags = self.declare_parameter("bags", [""]).value
        bags = [b for b in (bags or []) if b]
        values = {}
        for key, default in TrainConfig.flat_defaults().items():
            if key == "progress_bar":            # a node logs; its progress goes to /diagnostics
                continue
            value = declare(self, key, _parameter_default(default)) if not isinstance(default, list) else \
                self.declare_parameter(key, _parameter_default(default)).value
            if default is None and value == "":
                value = None
            if isinstance(default, list):
                value = [v for v in value if v]
            values[key] = value
        if not bags:
            raise ParameterError("parameter 'bags' is empty: name the bags to train on")
        try:
            self.config = TrainConfig.from_flat({"bags": bags, **values, "progress_bar": False})
        except (TypeError, ValueError) as error:
            raise ParameterError(f"training parameters: {error}") from None
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._state, self._message = "starting", ""
        self._stop = threading.Event()
        self.done = threading.Event()
        self.exit_code = 0
        self.wait_subscribers = declare(self, "wait_subscribers", 0, "start once the status topic has this many "
                                        "subscriptions (a monitor that must see the whole run)")
        self.status = self.create_publisher(String, "radar_pose/trainer/status", LATCHED_STATUS)
        self.diagnostics = NodeDiagnostics(self, "student training", self._status, hardware_id=self.config.out_dir,
                                           period=declare(self, "diagnostics_period", 1.0))
        self._worker = threading.Thread(target=self._train, name="train", daemon=True)
        self._worker.start()

    def _train(self) -> None:
        log = self.get_logger()
        if self.wait_subscribers:
            self._set("starting", f"waiting for {self.wait_subscribers} status subscription(s)")
            while self.status.get_subscription_count() < self.wait_subscribers:
                if self._stop.wait(0.05):
                    self.done.set()
                    return
            # A publisher sees the match before the subscriber's reader does: give it a moment.
            self._stop.wait(SETTLE_AFTER_MATCH_S)
        self._set("training", f"{len(self.config.bags)} bag(s) -> {self.config.out_dir}")
        try:
            result = train(self.config, on_progress=self._on_progress, should_stop=self._stop.is_set,
                           log=log.info)
        except (BagError, CheckpointError, TrainingError, ValueError) as error:
            self._fail(str(error))
        except Exception:  # noqa: BLE001 - a bug must be reported, not vanish with the thread
            self._fail(traceback.format_exc())
        else:
            state = "stopped" if result.stopped_early else "finished"
            self._set(state, f"{result.checkpoint} after {result.steps} steps")
            log.info(f"training {state}: {result.checkpoint}")
        finally:
            self.diagnostics.publish()
            self.done.set()

    def _fail(self, message: str) -> None:
        self.exit_code = 1
        self._set("failed", message)
        self.get_logger().error(f"training failed: {message}")

    def _set(self, state: str, message: str) -> None:
        with self._lock:
            self._state, self._message = state, message
        self._publish_status()

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._progress = progress
        self._publish_status()

    def _publish_status(self) -> None:
        with self._lock:
            status = {"state": self._state, "message": self._message, "out_dir": self.config.out_dir}
            if self._progress is not None:
                status.update(dataclasses.asdict(self._progress))
        self.status.publish(String(data=json.dumps(status)))

    def _status(self) -> tuple[bytes, str, dict]:
        with self._lock:
            state, message, progress = self._state, self._message, self._progress
        values = {"state": state}
        if progress is not None:
            values.update(step=progress.step, total_steps=progress.total_steps, epoch=progress.epoch,
                          lr=progress.lr, windows_per_s=progress.windows_per_s,
                          **{f"loss.{k}": v for k, v in progress.losses.items()})
            message = message if state != "training" else (
                f"step {progress.step}/{progress.total_steps}, loss {progress.losses.get('total', float('nan')):.4f}")
        level = ERROR if state == "failed" else WARN if state == "starting" else OK
        return level, f"{state}: {message}", values

    def stop(self) -> None:
        """Stop training after a checkpoint (Ctrl-C)."""
        self._stop.set()
        self._worker.join()


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    code = 0

    def interrupted() -> None:
        if node is not None:
            node.stop()
            node.get_logger().info(f"stopped; resume: true continues from {node.config.out_dir}/last.pt")

    try:
        node = TrainerNode()
        while rclpy.ok() and not node.done.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
        code = node.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted()
    except RuntimeError as error:
        raise_unless_shut_down(error)
        interrupted()
    except ParameterError as error:  # one clear line, no traceback
        rclpy.logging.get_logger("trainer").fatal(str(error))
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
