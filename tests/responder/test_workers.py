"""``[daemon] workers = N``: N processes answer on the same ports and stop together."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import dns.message
import pytest

from tests.helpers import BASE_CONFIG

TWO_WORKERS = BASE_CONFIG + "\n[daemon]\nworkers = 2\n"
DNS = ("127.0.0.10", 53)
SOURCE_PORTS = 32  # SO_REUSEPORT spreads by source port; 32 ports reach both workers


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def answered_from_many_ports(name: str = "sql01-cz1.corp.example", timeout: float = 0.3) -> int:
    """How many of SOURCE_PORTS queries, each from its own source port, got an answer."""
    count = 0
    for _ in range(SOURCE_PORTS):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(dns.message.make_query(name, "A").to_wire(), DNS)
            try:
                reply = dns.message.from_wire(sock.recv(2048))
            except TimeoutError:
                continue
            count += bool(reply.answer)
    return count


@pytest.fixture
def two_workers(write_config, start_daemon):
    daemon = start_daemon(write_config(TWO_WORKERS))
    daemon.wait_for_log("ready", count=2)
    (worker,) = children(daemon.proc.pid)
    return daemon, worker


def test_both_processes_answer_on_the_shared_port(two_workers):
    daemon, worker = two_workers
    assert answered_from_many_ports() == SOURCE_PORTS
    for paused in (daemon.proc.pid, worker):
        os.kill(paused, signal.SIGSTOP)
        try:
            served = answered_from_many_ports(timeout=0.1)
        finally:
            os.kill(paused, signal.SIGCONT)
        assert 0 < served < SOURCE_PORTS  # the running process answered its share alone


def test_sigterm_to_the_parent_stops_both_within_2_s(two_workers):
    daemon, worker = two_workers
    started = time.monotonic()
    assert daemon.stop(timeout=2.0) == 0
    assert time.monotonic() - started < 2.0
    assert not alive(worker)


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
    deadline = time.monotonic() + 5
    while alive(worker) and time.monotonic() < deadline:
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
