"""Running a node that spins until Ctrl-C or shutdown: the main() of every such node, under a
keeper (ros/keeper.py) that restarts it at once after a crash."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from ros2_radar_pose.ros import keeper
from ros2_radar_pose.ros.dds import use_discovery_profile
from ros2_radar_pose.ros.params import ParameterError

# Discovery is not symmetric: a publisher sees a subscription a moment before that subscriber has
# matched the publisher, and messages sent meanwhile are lost.
SETTLE_AFTER_MATCH_S = 1.0


def wait_for_subscribers(count: Callable[[], int], wanted: int, stop: threading.Event) -> bool:
    """Block until ``count()`` (a publisher's subscription count) reaches ``wanted``, then for
    SETTLE_AFTER_MATCH_S more (not at all for ``wanted`` 0); False if ``stop`` is set first."""
    if wanted <= 0:
        return True
    while count() < wanted:
        if stop.wait(0.05):
            return False
    return not stop.wait(SETTLE_AFTER_MATCH_S)


def spin_node(make_node: Callable[[], Node], name: str, args=None) -> None:
    """Init rclpy, build the node with ``make_node`` and spin it until Ctrl-C or shutdown, in a
    process the keeper forks and restarts after a crash (``RADAR_POSE_KEEPER=0``: in this one). A
    ParameterError while building is one fatal line under the logger ``name`` and exit code 2."""
    use_discovery_profile()
    if keeper.enabled():
        sys.exit(keeper.keep(lambda: _spin(make_node, name, args), name))
    _spin(make_node, name, args)


def raise_unless_shut_down(error: RuntimeError) -> None:
    """Re-raise ``error``, raised by rclpy's wait or take, unless the context is down. A Ctrl-C that
    lands between a spin loop's ``rclpy.ok()`` and its ``spin_once`` has rclpy's handler shut the
    context down, and the wait raises RCLError ("the given context is not valid") before the
    KeyboardInterrupt arrives: that is the shutdown, not a fault."""
    if rclpy.ok():
        raise error


def _spin(make_node: Callable[[], Node], name: str, args=None) -> None:
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        if interrupted.is_set():  # a second Ctrl-C (the keeper passes on what the terminal sent
            return                # the whole group) must not break the shutdown under way
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
    except RuntimeError as error:
        # Ctrl-C during rclpy's take of a message surfaces as pybind11's bare "Unable to convert
        # call argument" instead of KeyboardInterrupt (seen in radar_ingest under a 20 Hz feed):
        # after a SIGINT that is the shutdown, not a fault.
        if not interrupted.is_set():
            raise_unless_shut_down(error)
    except ParameterError as error:  # one clear line, no traceback
        rclpy.logging.get_logger(name).fatal(str(error))
        raise SystemExit(2) from None
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
