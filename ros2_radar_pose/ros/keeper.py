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

A killed node cannot say goodbye on DDS: its peers keep its participant until its lease runs out.
A new participant that takes the dead one's UDP ports (Fast DDS gives a new process the lowest
free participant id, which is the dead one's) got no data for 1-4 s after its peers had matched
it (measured: a subscriber killed and restarted beside a 20 Hz publisher, ``bench/load.py``); on
ports of its own it got the first message after 0.1-0.5 s. So the keeper notes the UDP ports its
node process has bound and, after a crash, binds them itself for ``HOLD_PORTS_S`` seconds: the
new node process is given the next free participant id.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import rclpy.logging

ENV = "RADAR_POSE_KEEPER"
CRASH_SIGNALS = frozenset({signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS,
                           signal.SIGFPE, signal.SIGILL})
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1
HOLD_PORTS_S = 30.0      # longer than a peer keeps a dead participant (our profile's lease: 5 s)
POLL_S = 0.02            # how often the keeper looks whether its node process has ended
PORTS_EVERY_S = 0.5      # how often it notes the ports that process has bound


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
    held = PortHold()
    while True:
        started = time.monotonic()
        child = os.fork()
        if child == 0:
            held.release()
            restore_handlers()
            os._exit(_run_child(run, keeper_pid, name))
        if stopping is not None:  # a signal that came while forking found no child to pass it to
            _signal(child, stopping)
        status, ports = _wait(child, held)
        crash = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if crash not in CRASH_SIGNALS or stopping is not None:
            return os.waitstatus_to_exitcode(status) if crash is None else 128 + crash
        held.hold(ports, HOLD_PORTS_S)
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


def _wait(child: int, held: PortHold) -> tuple[int, set[int]]:
    """Wait for the node process to end; its wait status and the UDP ports it had bound."""
    ports: set[int] = set()
    noted = 0.0
    while True:
        try:
            pid, status = os.waitpid(child, os.WNOHANG)
        except InterruptedError:
            continue
        if pid:
            return status, ports
        now = time.monotonic()
        if now - noted >= PORTS_EVERY_S:
            ports |= udp_ports(child)
            held.expire(now)
            noted = now
        time.sleep(POLL_S)


class PortHold:
    """UDP ports the keeper keeps bound so that no new DDS participant takes a dead one's."""

    def __init__(self):
        self.sockets: list[tuple[float, socket.socket]] = []

    def hold(self, ports: set[int], seconds: float) -> None:
        until = time.monotonic() + seconds
        for port in sorted(ports):
            held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                held.bind(("0.0.0.0", port))
            except OSError:  # taken again already, or a port of another address
                held.close()
                continue
            self.sockets.append((until, held))

    def expire(self, now: float) -> None:
        for until, held in self.sockets:
            if until <= now:
                held.close()
        self.sockets = [(until, held) for until, held in self.sockets if until > now]

    def release(self) -> None:
        for _, held in self.sockets:
            held.close()
        self.sockets = []


def udp_ports(pid: int) -> set[int]:
    """The local ports of the IPv4 UDP sockets process ``pid`` holds (Linux /proc; empty elsewhere
    or when the process is gone)."""
    try:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        table = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {int(fields[1].rsplit(":", 1)[1], 16) for fields in map(str.split, table) if fields[9] in inodes}


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
