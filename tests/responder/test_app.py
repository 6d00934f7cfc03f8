"""The daemon process: clean stop, reload with good and bad configs, bind errors.

Each test runs the real daemon (``python -m responder run``) on both event
loops and talks to it over DNS with dnspython.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from responder import app
from responder.config import parse_config
from tests.helpers import BASE_CONFIG, PATIENCE, REPO, run_on

SERVER = "127.0.0.10"
UDP, TCP = socket.SOCK_DGRAM, socket.SOCK_STREAM
REPLY_WAIT = 10.0  # seconds for one DNS reply on loopback
THIRD_NODE = """
[[node]]
cozen_name = "SQL01-CZ3"
management_ip = "127.0.0.13"
"""


def lookup(name: str, server: str = SERVER, timeout: float = REPLY_WAIT) -> tuple[str, list[str]]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=timeout)
    addresses = [r.address for rrset in reply.answer for r in rrset]
    return dns.rcode.to_text(reply.rcode()), addresses


def wait_until(check, timeout: float = PATIENCE):
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05)):
        try:
            return check()
        except (AssertionError, dns.exception.Timeout):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)
    return check()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_cleanly(sig, loop_kind, write_config, start_daemon):
    daemon = start_daemon(write_config(), loop_kind)
    assert lookup("sql01-cz1.corp.example") == ("NOERROR", ["127.0.0.11"])
    daemon.signal(sig)
    # The documented 2 s is measured by the benchmark (benchmarks/extras.py, stop_s); here:
    # the stop completes, names are released in time, and every port is free again.
    assert daemon.proc.wait(PATIENCE) == 0
    log = daemon.log()
    assert "stopped" in log and "Traceback" not in log
    assert "before every name release was sent" not in log
    released = [(SERVER, 53, UDP), (SERVER, 53, TCP), ("127.0.0.11", 137, UDP)]
    released += [("127.0.0.12", port, TCP) for port in (139, 445)]
    for host, port, kind in released:
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == TCP:  # as the daemon binds: TIME_WAIT from other tests' clients is no owner
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))


def test_sigusr1_logs_the_counters_and_keeps_serving(loop_kind, write_config, start_daemon):
    daemon = start_daemon(write_config(), loop_kind)
    assert lookup("sql01-cz1.corp.example") == ("NOERROR", ["127.0.0.11"])
    daemon.signal(signal.SIGUSR1)
    daemon.wait_for_log("counters:")
    (line,) = [x for x in daemon.log().splitlines() if "counters:" in x]
    assert re.search(r"counters: uptime \d+ s, 0 reloads, 0 log write errors; ", line), line
    assert re.search(r"; dns received=[1-9]\d* answered=[1-9]\d* send_dropped=0 ", line), line
    assert "; nbns received=" in line and " malformed=0" in line
    assert "; smb connections=0 evicted=0" in line
    assert lookup("sql01-cz1.corp.example") == ("NOERROR", ["127.0.0.11"])
    assert daemon.stop() == 0


def test_sigusr2_is_ignored(loop_kind, write_config, start_daemon):
    daemon = start_daemon(write_config(), loop_kind)
    daemon.signal(signal.SIGUSR2)
    # A pending signal is acted on before the process runs on: an answer means it survived.
    assert lookup("sql01-cz1.corp.example") == ("NOERROR", ["127.0.0.11"])
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()


def test_reload_with_valid_config_serves_new_answers(loop_kind, write_config, start_daemon):
    path = write_config()
    daemon = start_daemon(path, loop_kind)
    assert lookup("sql01-cz3.corp.example")[0] == "NXDOMAIN"
    path.write_text(BASE_CONFIG.replace('"127.0.0.10"', '"127.0.0.10", "127.0.0.20"') + THIRD_NODE)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")
    assert lookup("sql01-cz3.corp.example") == ("NOERROR", ["127.0.0.13"])
    assert lookup("sql01-cz1.corp.example", "127.0.0.20") == ("NOERROR", ["127.0.0.11"])
    # and back: the added listen address is released again
    path.write_text(BASE_CONFIG)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded", count=2)
    assert lookup("sql01-cz3.corp.example")[0] == "NXDOMAIN"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.20", 53))


def test_reload_with_broken_config_keeps_old_answers(loop_kind, write_config, start_daemon):
    path = write_config()
    daemon = start_daemon(path, loop_kind)
    path.write_text(BASE_CONFIG.replace('"127.0.0.12"', '"127.0.0.999"') + THIRD_NODE)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reload failed")
    assert "node[1].management_ip" in daemon.log()
    assert lookup("sql01-cz2.corp.example") == ("NOERROR", ["127.0.0.12"])
    assert lookup("sql01-cz3.corp.example")[0] == "NXDOMAIN"
    assert daemon.proc.poll() is None


def test_reload_that_cannot_bind_keeps_old_config(write_config, start_daemon):
    path = write_config()
    daemon = start_daemon(path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.21", 53))
        path.write_text(
            BASE_CONFIG.replace('"127.0.0.10"', '"127.0.0.10", "127.0.0.21"') + THIRD_NODE
        )
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("reload failed")
    assert "127.0.0.21:53" in daemon.log()
    assert lookup("sql01-cz3.corp.example")[0] == "NXDOMAIN"
    assert lookup("sql01-cz1.corp.example") == ("NOERROR", ["127.0.0.11"])


def test_bind_failure_at_start_is_one_line_and_exit_3(write_config):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind((SERVER, 53))
        result = subprocess.run(
            [sys.executable, "-m", "responder", "run", "--config", str(write_config())],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cozen-responder: dns/udp: cannot bind 127.0.0.10:53")
    assert "Traceback" not in result.stderr


def test_fast_path_switch_gives_identical_answers(write_config, start_daemon):
    queries = [
        dns.message.make_query(n, t, use_edns=e)
        for n in ("sql01-cz1.corp.example", "SQL01-cz2.CORP.example")
        for t in ("A", "AAAA", "MX")
        for e in (False, 0)
    ]
    queries.append(dns.message.make_query("12.0.0.127.in-addr.arpa", "PTR"))
    replies = {}
    for fast in ("true", "false"):
        daemon = start_daemon(
            write_config(BASE_CONFIG.replace("[dns]\n", f"[dns]\nfast_path = {fast}\n"))
        )
        replies[fast] = [
            _without_serial(dns.query.udp(q, SERVER, timeout=REPLY_WAIT).to_wire()) for q in queries
        ]
        daemon.stop()
    assert replies["true"] == replies["false"]


def _without_serial(wire: bytes) -> bytes:
    """The reply with any SOA serial zeroed: each config file gives its own (its mtime)."""
    message = dns.message.from_wire(wire)
    for rrset in message.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            (soa,) = rrset
            if soa.serial:
                wire = wire.replace(soa.serial.to_bytes(4, "big"), bytes(4))
    return wire


def test_embedded_default_serves_the_documented_answers(start_daemon, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "responder", "run"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        # polled quickly while the daemon starts; a short wait per try is not an assertion
        answer = wait_until(lambda: lookup("sql01-cz1.corp.example", timeout=0.5))
        assert answer == ("NOERROR", ["127.0.0.11"])
        reply = dns.query.udp(
            dns.message.make_query("12.0.0.127.in-addr.arpa", "PTR"), SERVER, timeout=REPLY_WAIT
        )
        assert reply.answer[0][0].target.to_text() == "sql01-cz2.corp.example."
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=PATIENCE)
    assert "SQL01-CZ1" in out and "<embedded default>" in out
    assert process.returncode == 0, err


def test_changing_workers_on_reload_says_it_needs_a_restart(loop_kind, write_config, start_daemon):
    path = write_config()
    daemon = start_daemon(path, loop_kind)
    path.write_text(BASE_CONFIG + "\n[daemon]\nworkers = 2\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")
    warnings = [x for x in daemon.log().splitlines() if "workers changed" in x]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0] and "from 1 to 2" in warnings[0]
    assert "next restart" in warnings[0]


def _soa_serial() -> int:
    reply = dns.query.udp(dns.message.make_query("corp.example", "SOA"), SERVER, timeout=REPLY_WAIT)
    (rrset,) = reply.answer
    return next(iter(rrset)).serial


def test_soa_serial_is_stable_across_restarts_and_rises_after_a_change(write_config, start_daemon):
    path = write_config()
    os.utime(path, (1_764_000_000, 1_764_000_000))
    serials = []
    for _ in range(2):
        daemon = start_daemon(path)
        serials.append(_soa_serial())
        daemon.stop()
    assert serials[0] == serials[1] == 1_764_000_000
    path.write_text(BASE_CONFIG.replace("[dns]\n", "[dns]\nttl = 600\n"))  # an edit: mtime is now
    daemon = start_daemon(path)
    assert _soa_serial() > serials[0]
    daemon.stop()


def test_soa_serial_after_reload_of_unchanged_and_changed_zone(write_config, start_daemon):
    path = write_config()
    daemon = start_daemon(path)
    first = _soa_serial()
    os.utime(path, (first + 100, first + 100))  # touched, same content
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")
    assert _soa_serial() == first
    path.write_text(BASE_CONFIG.replace("[dns]\n", "[dns]\nttl = 600\n"))
    os.utime(path, (first - 100, first - 100))  # an mtime set back: still rises (+1)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded", count=2)
    assert _soa_serial() == first + 1


def test_reload_derives_the_zone_serial_and_identities_off_the_loop(monkeypatch):
    """Both walk every node (~30 ms at 1,000): on the loop they would stall answering."""
    threads: dict[str, list[threading.Thread]] = {"serial": [], "identities": []}
    serial, identities = app.zone_serial, app.node_identities

    def recording_serial(*args: object) -> object:
        threads["serial"].append(threading.current_thread())
        return serial(*args)  # type: ignore[arg-type]

    def recording_identities(*args: object) -> object:
        threads["identities"].append(threading.current_thread())
        return identities(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "zone_serial", recording_serial)
    monkeypatch.setattr(app, "node_identities", recording_identities)
    first = parse_config(tomllib.loads(BASE_CONFIG), "test")
    second = parse_config(tomllib.loads(BASE_CONFIG + THIRD_NODE), "test")

    async def scenario() -> None:
        daemon = app.Daemon(first, asyncio.get_running_loop())
        await daemon.start()
        try:
            threads["serial"].clear()
            await daemon.reload(second)
            reply = await asyncio.to_thread(lookup, "sql01-cz3.corp.example")
            assert reply == ("NOERROR", ["127.0.0.13"])
        finally:
            await daemon.stop()

    run_on("asyncio", scenario)
    assert threads["serial"] and threads["identities"]
    assert threading.main_thread() not in threads["serial"] + threads["identities"]
