"""``[daemon] workers = N``: N processes answer on the same ports and stop together."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import time
from pathlib import Path

import dns.message
import pytest

from responder.workers import RESTART_DELAY, RESTART_DELAY_MAX, describe_exit, restart_delay
from tests.helpers import BASE_CONFIG, PATIENCE, workers_of

TWO_WORKERS = BASE_CONFIG + "\n[daemon]\nworkers = 2\n"
DNS = ("127.0.0.10", 53)
SOURCE_PORTS = 32  # SO_REUSEPORT spreads by source port; 32 ports reach both workers


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def ask_from_many_ports(name: str) -> list[socket.socket]:
    """One query from each of SOURCE_PORTS sockets (so from as many source ports)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SOURCE_PORTS)]
    for sock in socks:
        sock.sendto(dns.message.make_query(name, "A").to_wire(), DNS)
    return socks


def answered(socks: list[socket.socket], enough: int) -> int:
    """How many of ``socks`` got an answer, waiting (at most PATIENCE) until ``enough`` have."""
    count = 0
    deadline = time.monotonic() + PATIENCE
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ, sock)
        # bounded: every pass takes in at least one answer, or the time is up
        while count < enough and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                selector.unregister(key.data)
                count += bool(dns.message.from_wire(key.data.recv(2048)).answer)
    return count


def answered_from_many_ports(name: str = "sql01-cz1.corp.example") -> int:
    socks = ask_from_many_ports(name)
    try:
        return answered(socks, SOURCE_PORTS)
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def two_workers(write_config, start_daemon):
    daemon = start_daemon(write_config(TWO_WORKERS))
    daemon.wait_for_log("ready", count=2)
    (worker,) = workers_of(daemon.proc.pid)
    return daemon, worker


def test_both_processes_answer_on_the_shared_port(two_workers):
    daemon, worker = two_workers
    assert answered_from_many_ports() == SOURCE_PORTS
    for paused in (daemon.proc.pid, worker):
        os.kill(paused, signal.SIGSTOP)
        socks = ask_from_many_ports("sql01-cz1.corp.example")
        try:
            # A stopped process answers nothing, so the first answers are the running one's
            # share, and the stopped one's queries wait in its socket until it goes on.
            served = answered(socks, 1)
            os.kill(paused, signal.SIGCONT)
            late = answered(socks, SOURCE_PORTS - served)
        finally:
            os.kill(paused, signal.SIGCONT)
            for sock in socks:
                sock.close()
        assert 0 < served < SOURCE_PORTS
        assert served + late == SOURCE_PORTS


def test_sigterm_to_the_parent_stops_both(two_workers):
    daemon, worker = two_workers
    # Stopping within 2 s is measured by the benchmark (benchmarks/extras.py); here: it
    # completes, both processes stop and release their names and ports, the parent exits 0.
    assert daemon.stop() == 0
    assert not alive(worker)
    log = daemon.log()
    assert log.count("stopped") == 2 and "Traceback" not in log
    assert "before every name release was sent" not in log
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(DNS)  # no process holds the shared port any more


def test_sigusr1_and_sigusr2_reach_both_and_stop_neither(two_workers):
    daemon, worker = two_workers
    daemon.signal(signal.SIGUSR2)
    daemon.signal(signal.SIGUSR1)
    daemon.wait_for_log("counters:", count=2)  # the parent's and the worker's
    assert "worker 1 counters: " in daemon.log()
    assert alive(worker) and daemon.proc.poll() is None
    assert answered_from_many_ports() == SOURCE_PORTS


def test_sighup_to_the_parent_reloads_both(two_workers):
    daemon, worker = two_workers
    renamed = TWO_WORKERS.replace("SQL01-CZ1", "SQL01-CZ7")
    daemon.config_path.write_text(renamed)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded", count=2)
    assert answered_from_many_ports("sql01-cz7.corp.example") == SOURCE_PORTS
    assert alive(worker)


def test_a_worker_does_not_outlive_a_killed_parent(two_workers):
    daemon, worker = two_workers
    daemon.proc.kill()
    daemon.proc.wait(5)
    deadline = time.monotonic() + PATIENCE
    for _ in range(int(PATIENCE / 0.05)):
        if not alive(worker) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not alive(worker)


def test_one_worker_keeps_ports_exclusive(write_config, start_daemon):
    start_daemon(write_config())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError):
            sock.bind(DNS)


def bound_ports(pid: int) -> set[tuple[str, int]]:
    """(protocol, local port) of every TCP/UDP socket the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for proto in ("tcp", "udp"):
        for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.add((proto, int(fields[1].split(":")[1], 16)))
    return found


def test_extra_workers_serve_dns_only(two_workers):
    daemon, worker = two_workers
    assert bound_ports(worker) == {("udp", 53), ("tcp", 53)}
    assert {("udp", 53), ("tcp", 53), ("udp", 137), ("tcp", 445)} <= bound_ports(daemon.proc.pid)


def wait_until(check, what: str) -> None:
    deadline = time.monotonic() + PATIENCE  # only a guard against a hang
    while not check():
        assert time.monotonic() < deadline, f"not within {PATIENCE} s: {what}"
        time.sleep(0.02)


def test_a_killed_worker_is_restarted_and_dns_answers_meanwhile(
    write_config, start_daemon, loop_kind
):
    daemon = start_daemon(write_config(TWO_WORKERS), loop_kind)
    daemon.wait_for_log("ready", count=2)
    (worker,) = workers_of(daemon.proc.pid)
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: worker not in workers_of(daemon.proc.pid), "the killed worker reaped")
    daemon.wait_for_log("was killed by signal 9 (SIGKILL); restarting it in 0.5 s")
    # Its sockets closed with it: the kernel hands every query to the parent until
    # the new worker binds. (Were the restart quicker than these queries, they would
    # be answered all the same, by either.)
    assert answered_from_many_ports() == SOURCE_PORTS
    daemon.wait_for_log("worker 1 restarted")
    daemon.wait_for_log("ready", count=3)
    (fresh,) = workers_of(daemon.proc.pid)
    assert fresh != worker and bound_ports(fresh) == {("udp", 53), ("tcp", 53)}
    assert answered_from_many_ports() == SOURCE_PORTS
    assert daemon.stop() == 0
    assert not alive(fresh)
    # the parent and the fresh worker (the killed one never got to say it)
    assert daemon.log().count("stopped") == 2 and "Traceback" not in daemon.log()


def test_a_worker_stopped_on_purpose_is_not_restarted(two_workers):
    daemon, worker = two_workers
    os.kill(worker, signal.SIGTERM)
    daemon.wait_for_log("exited with status 0; not restarted")
    assert workers_of(daemon.proc.pid) == []
    assert answered_from_many_ports() == SOURCE_PORTS
    assert daemon.stop() == 0


def test_restart_delay_doubles_to_its_cap_and_starts_over_after_a_long_run():
    delays = [restart_delay(None, 0.1)]
    for _ in range(8):
        delays.append(restart_delay(delays[-1], 0.1))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert restart_delay(30.0, ran_for=RESTART_DELAY_MAX) == RESTART_DELAY


def test_exits_are_described_for_the_log():
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"
