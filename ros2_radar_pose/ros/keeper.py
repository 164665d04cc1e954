"""A node's keeper: restart a crashed node in a tenth of a second instead of two.

A restarted Python node spends most of its start importing (torch alone takes 1.0-1.5 s on a
small CPU), and ``ros2 launch``'s ``respawn`` pays that again after every crash. The keeper is the
node's own process, started once by launch, with every module already imported: it forks the
node's process from itself, waits, and when that process dies by a crash signal (SIGKILL from the
OOM killer or a user, SIGSEGV or SIGABRT from a native library) forks a fresh one at once. The
fork shares the imports, so the new node is up in the time it takes to build it (about 0.1 s).

Only crashes are restarted: an exit with a code (0 done, 1 an uncaught error, 2 bad parameters)
ends the keeper with that code, so launch sees what the node said. Crashes that come quickly one
after the other (``quick_limit`` within ``quick_s`` of starting) end the keeper by the same signal,
and launch's own ``respawn`` takes over. SIGINT and SIGTERM (Ctrl-C, launch's shutdown) are passed
to the node's process; if the keeper itself is killed, the node's process gets SIGTERM from the
kernel (``PR_SET_PDEATHSIG``), so a node never outlives its keeper and launch never runs two.

The fork happens before ``rclpy.init``: the keeper holds no DDS participant and no ROS context,
only imported modules, which is what makes forking it safe. ``RADAR_POSE_KEEPER=0`` runs the node
in the process launch started, as a plain node.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

import rclpy.logging

ENV = "RADAR_POSE_KEEPER"
CRASH_SIGNALS = frozenset({signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS,
                           signal.SIGFPE, signal.SIGILL})
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1


def enabled() -> bool:
    """Whether nodes run under a keeper: on unless ``RADAR_POSE_KEEPER`` is 0, false, no or off."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def keep(run: Callable[[], None], name: str, quick_s: float = 2.0, quick_limit: int = 3) -> int:
    """Run ``run`` (a node's whole life: init, spin, shutdown) in a forked process, and fork it again
    whenever that process dies by a crash signal. Returns the exit code for ``sys.exit``; a node that
    keeps crashing within ``quick_s`` of its start ``quick_limit`` times in a row ends the keeper by
    the same signal instead (it does not return)."""
    logger = rclpy.logging.get_logger(name)
    keeper_pid = os.getpid()
    _prctl(_PR_SET_NAME, f"{name[:10]}.keep".encode())  # ps and top tell the two apart
    child = 0
    stopping: int | None = None

    def forward(signum, frame):
        nonlocal stopping
        stopping = signum
        if child:
            _signal(child, signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}

    def restore_handlers():
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    quick = 0
    while True:
        started = time.monotonic()
        child = os.fork()
        if child == 0:
            restore_handlers()
            os._exit(_run_child(run, keeper_pid, name))
        if stopping is not None:  # a signal that came while forking found no child to pass it to
            _signal(child, stopping)
        _, status = os.waitpid(child, 0)
        crash = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if crash not in CRASH_SIGNALS or stopping is not None:
            return os.waitstatus_to_exitcode(status) if crash is None else 128 + crash
        quick = quick + 1 if time.monotonic() - started < quick_s else 0
        if quick >= quick_limit:
            logger.fatal(f"the node's process was killed by {signal.Signals(crash).name} {quick} times, "
                         f"each within {quick_s:g} s of its start; the keeper stops with the same signal")
            restore_handlers()
            if crash != signal.SIGKILL:  # whose handler cannot be set, nor needs to be
                signal.signal(crash, signal.SIG_DFL)
            os.kill(os.getpid(), crash)
            time.sleep(1.0)  # SIGKILL ends us here; the others are delivered on return from kill
            return 128 + crash
        logger.error(f"the node's process {child} was killed by {signal.Signals(crash).name}; "
                     "the keeper starts it again")


def _run_child(run: Callable[[], None], keeper_pid: int, name: str) -> int:
    """The forked node process: die with the keeper, run the node, give its exit code."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # not on Linux: a killed keeper leaves the node be
    _prctl(_PR_SET_NAME, name[:15].encode())
    if os.getppid() != keeper_pid:  # the keeper died before prctl took hold
        return 1
    try:
        run()
        code = 0
    except SystemExit as end:
        if isinstance(end.code, int) or end.code is None:
            code = end.code or 0
        else:
            print(end.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - what an uncaught error would print and exit with
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _prctl(option: int, value) -> None:
    """Linux prctl(2); nothing elsewhere."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
