"""``run --pcap`` recording real clients, tshark reading it, and ``replay`` of it.

One session of real clients (tests/interop/capture_clients.py) is recorded by
the daemon once per module; the tests then read the file with tshark and
replay it with the same config, a changed config, and cut short.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import BASE_CONFIG, PATIENCE, REPO, DaemonProcess
from tests.interop.capture_clients import REPEATS, Targets, run_clients
from tests.interop.tshark import expert_problems, fields, read

pytestmark = pytest.mark.interop

TARGETS = Targets(
    "127.0.0.10", ("SQL01-CZ1", "127.0.0.11"), ("SQL01-CZ2", "127.0.0.12"), "127.0.0.12"
)
CAPTURES = REPO / "tests" / "data" / "captures"
HEALTH = '\n[health]\nlisten = "127.0.0.1:9137"\nprobe_interval = 0\n'
UNLIMITED = "\n[limits]\nresponses_per_second = 0\n"  # thousands of queries from one source


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "responder", "replay", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(config, capture) of one client session recorded by the daemon."""
    directory = tmp_path_factory.mktemp("capture")
    config = directory / "config.toml"
    config.write_text(BASE_CONFIG)
    capture = directory / "session.pcapng"
    daemon = DaemonProcess(config, "uvloop", "--pcap", str(capture))
    try:
        daemon.wait_for_log("ready")
        run_clients(directory, TARGETS)
    finally:
        assert daemon.stop() == 0
    yield config, capture


def test_tshark_reads_it_without_problems(recording):
    _, capture = recording
    assert expert_problems(capture) == [], read(capture, "-q", "-z", "expert")
    assert "Malformed" not in read(capture, "-V")


def test_every_query_and_answer_is_in_the_file(recording):
    _, capture = recording
    ptr = "dns.qry.name == 12.0.0.127.in-addr.arpa"
    assert len(fields(capture, f"{ptr} && dns.flags.response == 0", "frame.number")) == REPEATS
    answers = fields(capture, f"{ptr} && dns.flags.response == 1", "dns.ptr.domain_name")
    assert answers == [["sql01-cz2.corp.example"]] * REPEATS  # the repeats path included
    tcp = fields(capture, "tcp.port == 53 && dns.flags.response == 1", "dns.a")
    assert tcp == [["127.0.0.11"]]
    assert fields(capture, "dns.qry.type == 28 && dns.flags.response == 1", "ip.src")
    nbns = fields(capture, "nbns.flags.response == 1", "ip.src")
    assert {row[0] for row in nbns} == {"127.0.0.11", "127.0.0.12"}
    assert len(nbns) >= 4


def test_wireshark_reassembles_the_smb2_negotiate_response(recording):
    _, capture = recording
    rows = fields(
        capture,
        "smb2.cmd == 0 && smb2.flags.response == 1",
        "ip.src",
        "tcp.srcport",
        "smb2.server_guid",
    )
    assert {(r[0], r[1]) for r in rows} >= {("127.0.0.12", "445"), ("127.0.0.11", "139")}
    assert all(len(r) == 3 and r[2] for r in rows)
    assert fields(capture, "nbss.type == 0x82", "ip.src") == [["127.0.0.11"]]


def test_replay_with_the_same_config_matches(recording):
    config, capture = recording
    done = replay("--config", str(config), str(capture))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:4]}
    assert int(lines["dns"][0]) >= REPEATS + 2
    assert int(lines["nbns"][0]) >= 4
    assert int(lines["smb"][0]) >= 10


def test_replay_with_a_renamed_node_names_the_differing_records(recording, tmp_path):
    _, capture = recording
    changed = tmp_path / "changed.toml"
    changed.write_text(BASE_CONFIG.replace("SQL01-CZ2", "SQL01-CZ9"))
    done = replay("--config", str(changed), str(capture))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "PTR 12.0.0.127.in-addr.arpa: sql01-cz2.corp.example → sql01-cz9.corp.example" in out
    assert "SQL01-CZ2" in out and "SQL01-CZ9" in out  # NBNS and NTLM names
    assert "127.0.0.11" not in out.split("\n\n", 1)[1].replace("127.0.0.1:", "")  # node 1 matched


def test_replay_with_a_moved_node_names_the_differing_records(recording, tmp_path):
    _, capture = recording
    changed = tmp_path / "moved.toml"
    changed.write_text(BASE_CONFIG.replace('"127.0.0.11"', '"127.0.0.21"'))
    done = replay("--config", str(changed), str(capture), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    lines = [line for d in report["differences"] for line in d["differences"]]
    assert "A sql01-cz1.corp.example: 127.0.0.11 → 127.0.0.21" in lines
    assert report["summary"]["nbns"]["not-ours"] >= 1  # node 1's address is no longer ours


def test_replay_of_a_truncated_capture_exits_2(recording, tmp_path):
    _, capture = recording
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(capture.read_bytes()[:-37])  # inside the last block
    done = replay("--config", str(recording[0]), str(cut))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert str(cut) in line and "unreadable capture" in line


def _status(port: int = 9137) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=PATIENCE) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _metrics(port: int = 9137) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=PATIENCE) as response:
        return str(response.read().decode())


def _query(sock: socket.socket, query_id: int) -> bytes:
    name = b"\x09sql01-cz1\x04corp\x07example\x00"
    sock.send(
        query_id.to_bytes(2)
        + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + name
        + b"\x00\x01\x00\x01"
    )
    return sock.recv(512)


def test_a_stalled_writer_never_blocks_answers(write_config, start_daemon, tmp_path):
    fifo = tmp_path / "stalled.pcapng"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read: the pipe fills
    try:
        config = write_config(BASE_CONFIG + HEALTH + UNLIMITED + "\n[capture]\nqueue = 16\n")
        daemon = start_daemon(config, "uvloop", "--pcap", str(fifo))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(PATIENCE)
            sock.connect(("127.0.0.10", 53))
            answers = [_query(sock, i) for i in range(3000)]
        assert all(a[3] & 0x0F == 0 and a[7] == 1 for a in answers)  # NOERROR, one answer each
        capture = _status()["capture"]
        assert capture["dropped"] > 0, capture  # type: ignore[index]
        assert 'cozen_capture_records_total{outcome="dropped"}' in _metrics()
    finally:
        os.close(reader)  # the writer's next write fails (EPIPE), counted; the stop completes
    assert daemon.stop() == 0


def test_filter_records_only_what_it_names(write_config, start_daemon, tmp_path):
    capture = tmp_path / "nbns-only.pcapng"
    daemon = start_daemon(write_config(), "uvloop", "--pcap", str(capture), "--pcap-filter", "nbns")
    subprocess.run(
        ["dig", "+tries=1", "@127.0.0.10", "sql01-cz1.corp.example"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    subprocess.run(["nbtscan", "127.0.0.11"], capture_output=True, timeout=30, check=False)
    assert daemon.stop() == 0
    assert fields(capture, "dns", "frame.number") == []
    assert fields(capture, "nbns.flags.response == 1", "ip.src")


def test_rotation_and_sighup_reopen(write_config, start_daemon, tmp_path):
    capture = tmp_path / "rotating.pcapng"
    config = write_config(BASE_CONFIG + HEALTH + UNLIMITED)
    daemon = start_daemon(config, "uvloop", "--pcap", str(capture), "--pcap-rotate", "2KB")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PATIENCE)
        sock.connect(("127.0.0.10", 53))
        for i in range(40):
            _query(sock, i)
    _wait(lambda: len(list(tmp_path.glob("rotating.pcapng.*"))) >= 2)
    moved = tmp_path / "moved-away.pcapng"
    _wait(lambda: capture.exists())
    capture.rename(moved)
    daemon.signal(signal.SIGHUP)
    _wait(lambda: capture.exists())
    assert daemon.stop() == 0
    for path in [*tmp_path.glob("rotating.pcapng*"), moved]:
        assert "Malformed" not in read(path, "-V"), path


def _wait(check, timeout: float = PATIENCE) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        done.wait(0.05)
    assert check()


def _connections(address: str) -> int:
    """How many connections the SMB listener at ``address`` holds now."""
    listeners = _status()["smb"]["listeners"]  # type: ignore[index]
    return int(next(x for x in listeners if x["address"] == address)["connections"])


def _table(stdout: str) -> dict[str, list[int]]:
    return {
        line.split()[0]: [int(x) for x in line.split()[1:]] for line in stdout.splitlines()[1:4]
    }


def test_replay_against_a_live_daemon(write_config, start_daemon):
    config = write_config()
    start_daemon(config)
    hosts = ("127.0.0.10", "127.0.0.11", "127.0.0.12")
    routes = [arg for host in hosts for arg in ("--against", f"{host}={host}")]
    done = replay("--config", str(config), str(CAPTURES / "cozen-lo.pcapng"), *routes)
    assert done.returncode == 0, done.stdout + done.stderr
    table = _table(done.stdout)
    assert table["dns"][0] >= 7 and table["nbns"][0] >= 6 and table["smb"][0] >= 20


def test_replay_against_a_live_daemon_with_another_identity(write_config, start_daemon):
    start_daemon(write_config(BASE_CONFIG.replace("SQL01-CZ1", "SQL01-CZ7")))
    against = ("--against", "127.0.0.11=127.0.0.11", "--json")
    done = replay("--config", str(write_config()), str(CAPTURES / "cozen-lo.pcapng"), *against)
    assert done.returncode == 1, done.stderr
    lines = [line for d in json.loads(done.stdout)["differences"] for line in d["differences"]]
    assert "ntlm nb_computer_name: SQL01-CZ1 → SQL01-CZ7" in lines


def test_answers_from_the_repeats_table_are_recorded(write_config, start_daemon, tmp_path):
    # 50 queries identical but for the ID: after the first, the compiled loop would answer them
    # from its repeats table without Python; recording must see every one of them.
    capture = tmp_path / "repeats.pcapng"
    daemon = start_daemon(write_config(), "uvloop", "--pcap", str(capture))
    assert "ready (compiled UDP loop)" in daemon.log()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PATIENCE)
        sock.connect(("127.0.0.10", 53))
        answers = [_query(sock, 1000 + i) for i in range(50)]
    assert daemon.stop() == 0
    assert len({a[2:] for a in answers}) == 1  # the same answer every time
    ids = fields(capture, "dns.flags.response == 1 && dns.a == 127.0.0.11", "dns.id")
    assert [int(row[0], 16) for row in ids] == [1000 + i for i in range(50)]


def test_a_connection_the_client_resets_ends_with_its_rst(write_config, start_daemon, tmp_path):
    """A client's RST is recorded as one RST from it, not as a FIN handshake."""
    capture = tmp_path / "reset.pcapng"
    daemon = start_daemon(write_config(BASE_CONFIG + HEALTH), "uvloop", "--pcap", str(capture))
    client = socket.create_connection(("127.0.0.11", 445), timeout=PATIENCE)
    client.sendall(b"\x00\x00\x00\x04")  # half an NBSS frame: the daemon waits for more
    _wait(lambda: _connections("127.0.0.11:445") == 1)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # SO_LINGER 0: the close sends RST
    _wait(lambda: _connections("127.0.0.11:445") == 0)
    assert daemon.stop() == 0
    ending = "tcp.port == 445 and (tcp.flags.reset == 1 or tcp.flags.fin == 1)"
    ends = fields(capture, ending, "ip.dst", "tcp.flags")
    assert ends == [["127.0.0.11", "0x0014"]]  # one RST-ACK, to the server


def test_a_connection_the_daemon_ends_idle_ends_with_fin(write_config, start_daemon, tmp_path):
    """An idle connection is dropped as the kernel does it: a FIN from the server."""
    capture = tmp_path / "idle.pcapng"
    config = write_config(BASE_CONFIG + "\n[smb]\nidle_timeout = 1\n")
    daemon = start_daemon(config, "uvloop", "--pcap", str(capture))
    with socket.create_connection(("127.0.0.11", 445), timeout=PATIENCE) as idle:
        assert idle.recv(1) == b""  # the FIN, not a reset, after 1 s of nothing
    assert daemon.stop() == 0
    firsts = fields(capture, "tcp.flags.reset == 1 or tcp.flags.fin == 1", "ip.src", "tcp.flags")
    assert firsts[0] == ["127.0.0.11", "0x0011"]  # FIN-ACK from the server first
    assert not fields(capture, "tcp.flags.reset == 1", "ip.src")
