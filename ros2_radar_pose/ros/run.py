"""Running a node that spins until Ctrl-C or shutdown: the main() of every such node."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from ros2_radar_pose.ros.params import ParameterError


def spin_node(make_node: Callable[[], Node], name: str, args=None) -> None:
    """Init rclpy, build the node with ``make_node`` and spin it until Ctrl-C or shutdown. A
    ParameterError while building is one fatal line under the logger ``name`` and exit code 2."""
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    # Set before rclpy.init, whose own handler chains to it.
    signal.signal(signal.SIGINT, on_sigint)
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Ctrl-C during rclpy's take of a message surfaces as pybind11's bare "Unable to convert
        # call argument" instead of KeyboardInterrupt (seen in radar_ingest under a 20 Hz feed):
        # after a SIGINT that is the shutdown, not a fault.
        if not interrupted.is_set() and rclpy.ok():
            raise
    except ParameterError as error:  # one clear line, no traceback
        rclpy.logging.get_logger(name).fatal(str(error))
        raise SystemExit(2) from None
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
