"""The keeper (ros/keeper.py): a node process killed by a crash signal is forked again at once;
exit codes, Ctrl-C and the keeper's own death pass through as a plain node's would."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import running

from ros2_radar_pose.ros.keeper import PORTS_EVERY_S, udp_ports

# ``run`` for the keeper: records each node process's pid, then does what MODE says.
SCRIPT = textwrap.dedent("""
    import os, signal, socket, sys, time
    from ros2_radar_pose.ros import keeper

    def run():
        # A node takes Ctrl-C itself (ros/run.py's spin_node does): one started with SIGINT
        # ignored, as a background job's children are, would otherwise keep ignoring it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with open(sys.argv[1], "a") as pids:
            pids.write(f"{os.getpid()}\\n")
        mode = sys.argv[2]
        if mode == "exit2":
            raise SystemExit(2)
        if mode == "raise":
            raise ValueError("a bug in the node")
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "udp":  # a DDS participant's unicast port, in short
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("0.0.0.0", 0))
            with open(sys.argv[1] + ".ports", "a") as ports:
                ports.write(f"{udp.getsockname()[1]}\\n")
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            print("node stopped cleanly", flush=True)

    if keeper.enabled():
        sys.exit(keeper.keep(run, "test_node", quick_s=5.0, quick_limit=3))
    run()
""")


def start(tmp_path: Path, mode: str, **env: str) -> tuple[subprocess.Popen, Path]:
    pids = tmp_path / "pids"
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(pids), mode], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
    return process, pids


def node_pids(pids: Path, count: int, timeout: float = 10.0) -> list[int]:
    """The first ``count`` node processes' pids, once that many have started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [int(line) for line in pids.read_text().split()] if pids.exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise AssertionError(f"{count} node processes did not start within {timeout} s")


def test_a_node_process_killed_by_sigkill_is_forked_again_at_once_and_ctrl_c_still_stops_it(tmp_path):
    keeper, pids = start(tmp_path, "sleep")
    first = node_pids(pids, 1)[0]
    assert first != keeper.pid and running(first)
    os.kill(first, signal.SIGKILL)
    killed = time.monotonic()
    second = node_pids(pids, 2)[1]
    assert time.monotonic() - killed < 1.0          # no imports again: a fork, not a new interpreter
    assert second not in (first, keeper.pid) and keeper.poll() is None
    keeper.send_signal(signal.SIGINT)               # Ctrl-C reaches the node through its keeper
    output, _ = keeper.communicate(timeout=10)
    assert keeper.returncode == 0, output
    assert "node stopped cleanly" in output and "killed by SIGKILL; the keeper starts it again" in output
    assert not running(second)


@pytest.mark.parametrize(("mode", "code", "says"), [("exit2", 2, ""), ("raise", 1, "ValueError: a bug in the node")])
def test_an_exit_with_a_code_ends_the_keeper_with_that_code_and_is_not_restarted(tmp_path, mode, code, says):
    keeper, pids = start(tmp_path, mode)
    output, _ = keeper.communicate(timeout=10)
    assert keeper.returncode == code and says in output
    assert len(node_pids(pids, 1)) == 1


def test_a_node_that_keeps_crashing_at_start_ends_the_keeper_by_the_same_signal(tmp_path):
    keeper, pids = start(tmp_path, "crash")
    output, _ = keeper.communicate(timeout=10)
    assert keeper.returncode == -signal.SIGKILL     # what launch sees of a crashed plain node: it respawns
    assert len(node_pids(pids, 3)) == 3 and "3 times" in output


def test_a_killed_keeper_takes_its_node_process_with_it(tmp_path):
    keeper, pids = start(tmp_path, "sleep")
    node = node_pids(pids, 1)[0]
    keeper.kill()
    keeper.wait()
    deadline = time.monotonic() + 5.0
    while running(node) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not running(node)                        # launch's respawn will never find two nodes


def test_radar_pose_keeper_0_runs_the_node_in_the_started_process(tmp_path):
    keeper, pids = start(tmp_path, "exit2", RADAR_POSE_KEEPER="0")
    keeper.communicate(timeout=10)
    assert keeper.returncode == 2 and node_pids(pids, 1) == [keeper.pid]


def test_after_a_crash_the_keeper_holds_the_dead_node_processs_udp_ports_so_the_next_takes_others(tmp_path):
    keeper, pids = start(tmp_path, "udp")
    first = node_pids(pids, 1)[0]
    ports = tmp_path / "pids.ports"
    time.sleep(2 * PORTS_EVERY_S + 0.2)             # the keeper notes its node process's ports
    port = int(ports.read_text().split()[0])
    assert port in udp_ports(first) and port not in udp_ports(keeper.pid)
    os.kill(first, signal.SIGKILL)
    second = node_pids(pids, 2)[1]
    deadline = time.monotonic() + 5.0
    while len(ports.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert port in udp_ports(keeper.pid)            # a new DDS participant cannot take the dead one's port
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError):
        taken.bind(("0.0.0.0", port))
    taken.close()
    assert int(ports.read_text().split()[1]) != port and port not in udp_ports(second)
    keeper.send_signal(signal.SIGINT)
    keeper.communicate(timeout=10)
    assert keeper.returncode == 0


def test_udp_ports_lists_this_processs_bound_udp_sockets():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        assert udp.getsockname()[1] in udp_ports(os.getpid())
    assert udp_ports(2 ** 22 + 1) == set()          # no such process
