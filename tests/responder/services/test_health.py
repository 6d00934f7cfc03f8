"""The health endpoint of a real daemon: /livez, /readyz, /status, /metrics, self-probes.

Daemons run as subprocesses in the suite's network namespace (or in-process
where a test must break one listener); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import dns.message
import dns.query
import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameQueryRequest,
    NameRegistrationRequest,
    NmFlags,
    Rcode,
    RegistrationResponse,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_packet
from responder.app import Daemon
from responder.config import ConfigError, load_config
from tests.helpers import BASE_CONFIG, REPO, end_process, golden, run_on

T = TypeVar("T")
HEALTH = ("127.0.0.1", 9137)
CONFIG = BASE_CONFIG + '\n[health]\nlisten = "127.0.0.1:9137"\nprobe_interval = 1\n'


def fetch(path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*HEALTH, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        time.sleep(0.1)


def readyz() -> tuple[int, dict[str, object]]:
    code, _, body = fetch("/readyz")
    return code, json.loads(body)


def metric_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` in an exposition, keyed by its sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def metrics() -> str:
    code, _, body = fetch("/metrics")
    assert code == 200
    return body.decode()


def promtool(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


# ------------------------------------------------------------ embedded default


def test_embedded_default_is_ready_and_its_metrics_pass_promtool(tmp_path):
    """``make run``: /readyz 200 with every node ok, /livez, HEAD, and promtool on /metrics."""
    with (tmp_path / "daemon.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "responder", "run"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        _, body = wait_for(lambda: (r := readyz())[0] == 200 and r, what="ready")
        nodes = body["nodes"]
        assert sorted(nodes) == ["SQL01-CZ1", "SQL01-CZ2"]
        for node in nodes.values():
            assert {node[p]["status"] for p in ("dns", "nbns", "smb")} == {"ok"}
        assert fetch("/livez")[::2] == (200, b"ok\n")
        head_code, headers, head_body = fetch("/readyz", "HEAD")
        assert (head_code, head_body) == (200, b"")
        assert int(headers["Content-Length"]) > 0
        text = metrics()
        checked = promtool(text)
        print(f"promtool check metrics: rc={checked.returncode} {checked.stdout}{checked.stderr}")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert metric_values(text, "cozen_build_info")
    finally:
        end_process(process)


# ------------------------------------------------------------ readiness


PRESENT = "198.18.0.11"  # management addresses are loopback only when all are (a lab)
ABSENT = "198.18.0.12"
ABSENT_CONFIG = CONFIG.replace(
    'management_ip = "127.0.0.11"', f'management_ip = "{PRESENT}"'
).replace('management_ip = "127.0.0.12"', f'management_ip = "{ABSENT}"')


def ip_addr(verb: str, address: str = ABSENT) -> None:
    subprocess.run(["ip", "addr", verb, f"{address}/32", "dev", "lo"], check=True)


def failing_reasons(body: dict[str, object], node: str, protocol: str) -> list[str]:
    state = body["nodes"][node][protocol]  # type: ignore[index]
    return list(state.get("reasons", []))


def test_readyz_fails_while_an_address_is_missing_and_recovers(write_config, start_daemon):
    ip_addr("add", PRESENT)
    ip_addr("add")
    try:
        start_daemon(write_config(ABSENT_CONFIG))
        wait_for(lambda: readyz()[0] == 200, what="ready at first")
        ip_addr("del")
        _, body = wait_for(lambda: (r := readyz())[0] == 503 and r, what="503")
        reasons = failing_reasons(body, "SQL01-CZ2", "nbns")
        assert f"{ABSENT}:137 not bound: address not present" in reasons
        assert f"{ABSENT}:445 not bound: address not present" in failing_reasons(
            body, "SQL01-CZ2", "smb"
        )
        assert body["nodes"]["SQL01-CZ1"]["nbns"] == {"status": "ok"}
        probe = "self-probe nbns query SQL01-CZ2<00>: "

        def probe_failed() -> bool:
            reasons = failing_reasons(readyz()[1], "SQL01-CZ2", "nbns")
            return any(reason.startswith(probe) for reason in reasons)

        wait_for(probe_failed, what="probe failure")
        verbose = fetch("/readyz?verbose")
        assert verbose[0] == 503
        assert b"[-] SQL01-CZ2 (198.18.0.12) nbns: failing: " in verbose[2]
        ip_addr("add")
        wait_for(lambda: readyz()[0] == 200, what="ready again")
    finally:
        for address in (ABSENT, PRESENT):
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


def sysctl(name: str, value: str | None = None) -> str:
    """Read (or set) a sysctl of the suite's network namespace."""
    path = f"/proc/sys/{name.replace('.', '/')}"
    if value is not None:
        with open(path, "w") as file:
            file.write(value)
    with open(path) as file:
        return file.read().strip()


def test_readyz_sees_a_missing_address_even_with_nonlocal_bind(write_config, start_daemon):
    """With net.ipv4.ip_nonlocal_bind=1 (keepalived hosts) an absent address binds: not present."""
    before = sysctl("net.ipv4.ip_nonlocal_bind")
    ip_addr("add", PRESENT)
    try:
        sysctl("net.ipv4.ip_nonlocal_bind", "1")  # this namespace's alone
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((ABSENT, 0))  # what the readiness check used to take for "present"
        start_daemon(write_config(ABSENT_CONFIG))
        _, body = wait_for(
            lambda: (r := readyz())[1]["nodes"]["SQL01-CZ1"]["smb"] == {"status": "ok"} and r,
            what="the present node probed and ready",
        )
        reasons = failing_reasons(body, "SQL01-CZ2", "smb")
        assert f"{ABSENT}:445 not bound: address not present" in reasons
        ip_addr("add")
        wait_for(lambda: readyz()[0] == 200, what="ready once the address is there")
    finally:
        sysctl("net.ipv4.ip_nonlocal_bind", before)
        for address in (ABSENT, PRESENT):
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


class RefusingWins:
    """A WINS server on 127.0.0.53 that refuses every registration (ACT_ERR)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.53", 137))
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            message = decode_packet(data)
            if isinstance(message, NameRegistrationRequest):
                refusal = RegistrationResponse(
                    message.trn_id, message.opcode, message.name,
                    NmFlags.AA | NmFlags.RA, Rcode.ACT_ERR, 0, message.flags, message.address,
                )  # fmt: skip
                self.sock.sendto(encode_packet(refusal), source)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def test_readyz_names_a_netbios_conflict_and_its_objector(write_config, start_daemon):
    wins = RefusingWins()
    try:
        start_daemon(write_config(CONFIG + '\n[netbios]\nwins_server = "127.0.0.53"\n'))
        conflict = "SQL01-CZ2<00> in conflict with 127.0.0.53"

        def probed_and_in_conflict() -> dict[str, object] | None:
            code, body = readyz()
            reasons = failing_reasons(body, "SQL01-CZ2", "nbns")
            probed = body["nodes"]["SQL01-CZ2"]["dns"] == {"status": "ok"}  # type: ignore[index]
            return body if code == 503 and conflict in reasons and probed else None

        body = wait_for(probed_and_in_conflict, what="conflict")
        assert body["nodes"]["SQL01-CZ1"]["smb"] == {"status": "ok"}
        text = metrics()
        states = metric_values(text, "cozen_netbios_name_state")
        key = (("name", "SQL01-CZ2<00>"), ("node", "SQL01-CZ2"), ("state", "conflict"))
        assert states[key] == 1
        # CORP<00> is owned by both nodes: one series each, never a duplicate
        assert len([k for k in states if ("name", "CORP<00>") in k]) == 2
        assert promtool(text).returncode == 0
    finally:
        wins.close()


def test_failed_reload_stays_ready_but_says_so(write_config, start_daemon):
    path = write_config(CONFIG)
    daemon = start_daemon(path)
    wait_for(lambda: readyz()[0] == 200, what="ready")
    path.write_text(CONFIG.replace('"127.0.0.11"', '"not-an-ip"'))
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reload failed")
    code, body = readyz()
    assert code == 200 and body["last_reload"]["last"] == "failed"
    verbose = fetch("/readyz?verbose")[2].decode()
    assert "[!] last reload: FAILED at " in verbose and "not-an-ip" in verbose
    status = json.loads(fetch("/status")[2])
    assert status["reload"]["failed"] == 1 and "management_ip" in status["reload"]["last_reason"]
    reloads = metric_values(metrics(), "cozen_reloads_total")
    assert reloads[(("result", "failed"),)] == 1 and reloads[(("result", "ok"),)] == 0
    path.write_text(CONFIG)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")
    assert readyz()[1]["last_reload"]["last"] == "ok"
    assert "[+] last reload: ok at " in fetch("/readyz?verbose")[2].decode()
    reloads = metric_values(metrics(), "cozen_reloads_total")
    assert reloads[(("result", "failed"),)] == 1 and reloads[(("result", "ok"),)] == 1


def test_healthz_is_readyz_and_unknown_paths_are_404(write_config, start_daemon):
    start_daemon(write_config(CONFIG))
    wait_for(lambda: readyz()[0] == 200, what="ready")
    assert fetch("/healthz")[0] == 200
    assert json.loads(fetch("/healthz")[2])["ready"] is True
    assert fetch("/nope")[0] == 404


def test_bad_health_listen_is_a_config_error(write_config):
    with pytest.raises(ConfigError, match=r"health\.listen: 'nowhere' must be ADDRESS:PORT"):
        load_config(str(write_config(BASE_CONFIG + '[health]\nlisten = "nowhere"\n')))


# ------------------------------------------------------------ self-probes


async def get_async(path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(*HEALTH)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_self_probes_fail_with_a_reason_when_a_node_smb_is_down(loop_kind, write_config):
    config = load_config(
        str(
            write_config(
                BASE_CONFIG + '\n[health]\nlisten = "127.0.0.1:9137"\nprobe_interval = 3600\n'
            )
        )
    )

    async def scenario() -> None:
        daemon = Daemon(config, asyncio.get_running_loop())
        await daemon.start()
        try:
            health = next(s for s in daemon.services if s.name == "health")
            probes = health.endpoints.probes  # type: ignore[attr-defined]
            results = await probes.run_once()
            assert all(r.ok for r in results) and {r.protocol for r in results} == {
                "dns",
                "nbns",
                "smb",
            }
            smb = next(s for s in daemon.services if s.name == "smb")
            await smb.tcp.active.pop(("127.0.0.12", 445, False)).close()  # type: ignore[attr-defined]
            results = await probes.run_once()
            failed = [r for r in results if not r.ok]
            assert [(r.node, r.protocol, r.check) for r in failed] == [
                ("SQL01-CZ2", "smb", "negotiate :445")
            ]
            assert failed[0].reason == "connection refused" and failed[0].seconds is None
            passed = [r for r in results if r.ok]
            assert all(r.seconds is not None and r.seconds >= 0 for r in passed)
            code, body = await get_async("/readyz")
            assert code == 503
            smb_state = json.loads(body)["nodes"]["SQL01-CZ2"]["smb"]
            assert smb_state["reasons"] == [
                "127.0.0.12:445 not bound",
                "self-probe smb negotiate :445: connection refused",
            ]
            status = json.loads((await get_async("/status"))[1])
            rounds = status["self_probes"]["rounds"]  # the scheduled round at start, and ours
            assert rounds >= 2
            assert status["health"]["self_probes_failing"] == [
                "self-probe smb negotiate :445: connection refused"
            ]
            text = (await get_async("/metrics"))[1].decode()
            up = metric_values(text, "cozen_self_probe_up")
            assert up[(("node", "SQL01-CZ2"), ("protocol", "smb"))] == 0
            assert up[(("node", "SQL01-CZ1"), ("protocol", "smb"))] == 1
            counts = metric_values(text, "cozen_self_probe_seconds_count")
            assert counts[(("protocol", "dns"),)] == 4 * rounds  # 2 nodes x (A + PTR) a round
        finally:
            await daemon.stop()

    run_on(loop_kind, scenario)


# ------------------------------------------------------------ counters


def dns_counter(name: str) -> float:
    return sum(metric_values(metrics(), name).values())


@pytest.mark.parametrize("udp_loop", ["compiled", "python"])
def test_fast_path_answers_raise_the_dns_counters(write_config, start_daemon, udp_loop):
    switch = {"COZEN_PURE_PYTHON": "1" if udp_loop == "python" else ""}
    quiet = CONFIG.replace("probe_interval = 1", "probe_interval = 0")
    start_daemon(write_config(quiet), env=switch)
    assert metric_values(metrics(), "cozen_udp_loop_info") == {(("loop", udp_loop),): 1}
    query = dns.message.make_query("sql01-cz1.corp.example", "A")
    for _ in range(10):  # repeats: answered from the memo (in C on the compiled loop)
        dns.query.udp(query, "127.0.0.10", timeout=2)
    key = (("address", "127.0.0.10:53"),)
    assert metric_values(metrics(), "cozen_dns_udp_received_total")[key] == 10
    assert metric_values(metrics(), "cozen_dns_udp_answered_total")[key] == 10


def test_every_worker_is_counted(write_config, start_daemon):
    config = (
        CONFIG.replace("probe_interval = 1", "probe_interval = 0") + "\n[daemon]\nworkers = 2\n"
    )
    start_daemon(write_config(config))
    wait_for(lambda: dns_counter("cozen_workers") == 2, what="both workers publishing")
    for _ in range(60):  # each from its own source port: SO_REUSEPORT spreads them
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(
                dns.message.make_query("sql01-cz2.corp.example", "A").to_wire(), ("127.0.0.10", 53)
            )
            assert dns.message.from_wire(sock.recv(2048)).answer
    wait_for(lambda: dns_counter("cozen_dns_udp_answered_total") == 60, what="60 answered")
    assert dns_counter("cozen_dns_udp_received_total") == 60
    status = json.loads(fetch("/status")[2])
    mine = status["dns"]["udp"][0]["answered"]
    assert 0 < mine < 60, "both workers answered some (worker 0's own share is below 60)"
    # Every one went through a repeats table (in C: the compiled loop) or Python's counts.
    answered = ("udp", "A", "answered")
    assert (
        queries_total(metrics())[answered] + dns_counter("cozen_dns_repeats_answered_total") == 60
    )


def test_every_worker_is_counted_by_qtype_and_outcome(write_config, start_daemon):
    config = (
        CONFIG.replace("probe_interval = 1", "probe_interval = 0") + "\n[daemon]\nworkers = 2\n"
    )
    start_daemon(write_config(config))
    wait_for(lambda: dns_counter("cozen_workers") == 2, what="both workers publishing")
    names = spellings("sql01-cz2.corp.example", 60)  # distinct bytes: no repeats, all Python
    for name in names:  # each from its own source port: SO_REUSEPORT spreads them
        assert dns.message.from_wire(udp_exchange(dns.message.make_query(name, "A").to_wire()))
    for name in names[:10]:
        udp_exchange(dns.message.make_query(name, "AAAA").to_wire())
    for name in names[:10]:  # exact repeats of the AAAA queries, new IDs
        udp_exchange(dns.message.make_query(name, "AAAA").to_wire())

    def counted() -> tuple[float, float, float, float] | None:
        text = metrics()  # one scrape: every worker's latest snapshot, taken together
        totals, values = queries_total(text), metric_values
        repeats = sum(values(text, "cozen_dns_repeats_answered_total").values())
        fast = sum(values(text, "cozen_dns_fast_path_answers_total").values())
        found = (totals[("udp", "A", "answered")], totals.get(("udp", "AAAA", "nodata"), 0))
        return (*found, repeats, fast) if found[0] + found[1] + repeats == 80 else None

    a, nodata, repeats, fast = wait_for(counted, what="80 answers counted, across workers")
    assert (a, nodata + repeats, fast) == (60, 20, 80 - repeats)
    status = json.loads(fetch("/status")[2])
    assert status["dns"]["udp"][0]["answered"] < 80, "worker 0 alone did not answer them all"


# ------------------------------------------------------------ counters by qtype and outcome


def spellings(name: str, count: int) -> list[str]:
    """``count`` letter-case spellings of ``name``, all different (distinct query bytes)."""
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    found = []
    for n in range(count):
        chars = list(name)
        for bit, index in enumerate(letters):
            if n >> bit & 1:
                chars[index] = chars[index].upper()
        found.append("".join(chars))
    return found


def udp_exchange(datagram: bytes, *, reply: bool = True) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(datagram, ("127.0.0.10", 53))
        return sock.recv(4096) if reply else None


def queries_total(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (labels["protocol"], labels["qtype"], labels["outcome"]): value
        for key, value in metric_values(text, "cozen_dns_queries_total").items()
        for labels in [dict(key)]
    }


def grown(before: dict, after: dict) -> dict:
    """What rose between two scrapes, per series (series at 0 left out)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


@pytest.mark.parametrize("udp_loop", ["compiled", "python"])
def test_dns_queries_are_counted_by_qtype_and_outcome(write_config, start_daemon, udp_loop):
    switch = {"COZEN_PURE_PYTHON": "1" if udp_loop == "python" else ""}
    start_daemon(
        write_config(CONFIG.replace("probe_interval = 1", "probe_interval = 0")), env=switch
    )
    before = metrics()
    wires = [
        *(dns.message.make_query(n, "A") for n in spellings("sql01-cz1.corp.example", 4)),
        *(dns.message.make_query(n, "AAAA") for n in spellings("sql01-cz2.corp.example", 3)),
        *(dns.message.make_query(f"nope{i}.corp.example", "A") for i in range(2)),
        *(dns.message.make_query(n, "A") for n in spellings("sql01.corp.example", 2)),
    ]
    for query in wires:
        assert dns.message.from_wire(udp_exchange(query.to_wire())).id == query.id
    malformed = dns.message.make_query("sql01-cz1.corp.example", "A").to_wire()[:-3]
    for _ in range(2):
        assert udp_exchange(malformed)[3] & 0xF == 1  # FORMERR
    udp_exchange(b"\x00\x01\x00", reply=False)  # dropped: no header to answer
    repeat = dns.message.make_query("sql01-cz1.corp.example", "A")  # the first spelling again
    for qid in range(5):
        repeat.id = qid
        assert dns.message.from_wire(udp_exchange(repeat.to_wire())).answer
    tcp = dns.query.tcp(dns.message.make_query("sql01-cz2.corp.example", "A"), "127.0.0.10", 2)
    assert tcp.answer

    repeats = 5 if udp_loop == "compiled" else 0  # the compiled loop answers them in C
    expected = {
        ("udp", "A", "answered"): 4 + 5 - repeats,
        ("udp", "AAAA", "nodata"): 3,
        ("udp", "A", "nxdomain"): 2,
        ("udp", "A", "refused"): 2,
        ("udp", "none", "formerr"): 2,
        ("udp", "none", "dropped"): 1,
        ("tcp", "A", "answered"): 1,
    }
    text = wait_for(
        lambda: (
            (t := metrics()) and grown(queries_total(before), queries_total(t)) == expected and t
        ),
        what=f"{expected}",
    )

    def one(name: str, key: tuple = ()) -> float:
        return metric_values(text, name)[key] - metric_values(before, name).get(key, 0)

    address = (("address", "127.0.0.10:53"),)
    assert one("cozen_dns_repeats_answered_total", address) == repeats
    assert one("cozen_dns_fast_path_answers_total") == 4 + 3 + 5 - repeats
    assert one("cozen_dns_general_path_queries_total", (("protocol", "udp"),)) == 2 + 2 + 2 + 1
    assert one("cozen_dns_general_path_queries_total", (("protocol", "tcp"),)) == 1
    assert one("cozen_dns_tcp_connections_accepted_total", address) == 1
    assert one("cozen_dns_udp_answered_total", address) == 4 + 3 + 2 + 2 + 2 + 5
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("udp_loop", ["compiled", "python"])
def test_nbns_fast_path_and_repeats_are_counted(write_config, start_daemon, udp_loop):
    switch = {"COZEN_PURE_PYTHON": "1" if udp_loop == "python" else ""}
    start_daemon(
        write_config(CONFIG.replace("probe_interval = 1", "probe_interval = 0")), env=switch
    )
    before = metrics()
    name = NetbiosName("SQL01-CZ1", 0x20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for trn_id in range(6):  # the first one a fast-path hit, then exact repeats
            sock.sendto(encode_packet(NameQueryRequest(trn_id, name)), ("127.0.0.11", 137))
            assert sock.recv(1024)[:2] == trn_id.to_bytes(2, "big")
    text = metrics()

    def grew(metric: str) -> float:
        return sum(metric_values(text, metric).values()) - sum(
            metric_values(before, metric).values()
        )

    repeats = 5 if udp_loop == "compiled" else 0
    assert grew("cozen_nbns_repeats_answered_total") == repeats
    assert grew("cozen_nbns_fast_path_answers_total") == 6 - repeats
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dropped_sources_and_rate_limiting_are_counted_across_workers(write_config, start_daemon):
    """Reflection-port sources and limited answers, per service, every worker added up."""
    config = CONFIG.replace("probe_interval = 1", "probe_interval = 0")
    config += "\n[daemon]\nworkers = 2\n[limits]\nresponses_per_second = 1\nburst = 1\nslip = 2\n"
    start_daemon(write_config(config))
    wait_for(lambda: dns_counter("cozen_workers") == 2, what="both workers publishing")
    query = dns.message.make_query("sql01-cz1.corp.example", "A").to_wire()
    name_query = encode_packet(NameQueryRequest(0x1234, NetbiosName("SQL01-CZ1")))
    for n in range(20):  # chargen from 20 sources: SO_REUSEPORT spreads them over the workers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as chargen:
            chargen.bind((f"127.0.2.{n + 1}", 19))
            chargen.sendto(query, ("127.0.0.10", 53))
            chargen.sendto(name_query, ("127.0.0.11", 137))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asker:
        asker.bind(("127.0.0.97", 0))
        for _ in range(6):  # one answer, then 5 over the limit: drop, TC, drop, TC, drop
            asker.sendto(query, ("127.0.0.10", 53))

    def counted() -> dict[tuple[tuple[str, str], ...], float] | None:
        text = metrics()
        values = metric_values(text, "cozen_dropped_sources_total")
        values.update(metric_values(text, "cozen_rate_limited_total"))
        reflected = values.get((("reason", "reflection_port"), ("service", "dns")))
        return values if reflected == 20 and len(values) == 12 else None

    values = wait_for(counted, what="20 reflection-port drops counted over both workers")
    assert values[(("reason", "reflection_port"), ("service", "nbns"))] == 20
    assert values[(("action", "slipped"), ("service", "dns"))] == 2
    assert values[(("action", "dropped"), ("service", "dns"))] == 3
    assert values[(("action", "would_limit"), ("service", "dns"))] == 0
    assert values[(("reason", "port_zero"), ("service", "dns"))] == 0
    status = json.loads(fetch("/status")[2])
    assert status["dns"]["dropped_sources"]["reflection_port"] < 20, "worker 0 saw only some"
    checked = promtool(metrics())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def smb_exchange(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    header = b""
    while len(header) < 4:
        header += sock.recv(4 - len(header))
    size = int.from_bytes(header[1:], "big")
    body = b""
    while len(body) < size:
        body += sock.recv(size - len(body))
    return header + body


def test_smb_handshakes_are_counted_by_dialect_and_result(write_config, start_daemon):
    start_daemon(write_config(CONFIG.replace("probe_interval = 1", "probe_interval = 0")))
    before = metrics()
    conversations = [
        ["smb_smbclient_smb2_negotiate_req", "smb_smbclient_smb2_session_setup_negotiate_req"],
        ["smb_nmap_smb2_single_dialect_negotiate_req"],
        ["smb_smbclient_nt1_negotiate_req"],
        ["smb_nmap_smb1_negotiate_req", "smb_nmap_smb1_session_setup_anonymous_req"],
        [
            "smb_smbclient_nt1_nospnego_negotiate_req",
            "smb_smbclient_nt1_nospnego_session_setup_req",
        ],
    ]
    for captures in conversations:
        with socket.create_connection(("127.0.0.11", 445), timeout=5) as sock:
            for name in captures:
                smb_exchange(sock, golden(name))
    text = metrics()

    def grew(name: str, label: str) -> dict[str, float]:
        values = {dict(k)[label]: v for k, v in metric_values(text, name).items()}
        old = {dict(k)[label]: v for k, v in metric_values(before, name).items()}
        return grown(old, values)

    assert grew("cozen_smb_negotiations_total", "dialect") == {
        "3.1.1": 1,
        "2.0.2": 1,
        "NT LM 0.12": 3,
    }
    assert grew("cozen_smb_session_setups_total", "result") == {
        "challenge_sent": 1,
        "null_session": 1,
        "logon_failure": 1,
    }
    accepted = metric_values(text, "cozen_smb_tcp_connections_accepted_total")
    key = (("address", "127.0.0.11:445"), ("transport", "direct"))
    assert accepted[key] - metric_values(before, "cozen_smb_tcp_connections_accepted_total").get(
        key, 0
    ) == len(conversations)
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ------------------------------------------------------------ periodic audit


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "health.audit_interval: must be between 0 and 86400, got -1"),
        ("86401", "health.audit_interval: must be between 0 and 86400, got 86401"),
        ('"60"', "health.audit_interval: must be an integer, got '60'"),
        ("1.5", "health.audit_interval: must be an integer, got 1.5"),
    ],
)
def test_bad_audit_interval_is_a_one_line_config_error(write_config, value, message):
    text = BASE_CONFIG + f'[health]\nlisten = "127.0.0.1:9137"\naudit_interval = {value}\n'
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_config(str(write_config(text)))
    assert "\n" not in str(caught.value)


def test_audit_interval_defaults_to_off(write_config):
    config = load_config(str(write_config(BASE_CONFIG + '[health]\nlisten = "127.0.0.1:9137"\n')))
    assert config.health.audit_interval == 0


def last_audit() -> dict[str, object] | None:
    code, _, body = fetch("/status")
    assert code == 200
    audit = json.loads(body)["audit"]
    return audit["last"] if audit["last"] and audit["runs"] >= 2 else None


def test_the_periodic_audit_is_in_status_metrics_and_the_page(write_config, start_daemon):
    """``audit_interval = 1``: a passing audit in /status, /metrics (promtool) and on /."""
    start_daemon(write_config(CONFIG + "audit_interval = 1\n"))
    last = wait_for(last_audit, 60, "two audit runs")
    assert last["passed"] is True, last
    assert last["failures"] == [] and last["nodes"] == 2
    text = metrics()
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert metric_values(text, "cozen_audit_passed") == {(): 1}
    assert metric_values(text, "cozen_audit_runs_total")[()] >= 2
    assert metric_values(text, "cozen_audit_failures") == {}
    page = fetch("/")[2].decode()
    assert '<p id="audit"><span class="badge ok">pass</span> 2 node(s)</p>' in page
    assert readyz()[0] == 200


def test_a_failing_audit_names_its_cells_and_leaves_readyz_alone(loop_kind, write_config):
    """Node 2's SMB listener closed: its SMB cells fail with reasons; /readyz is the probes'."""
    config = load_config(
        str(
            write_config(
                BASE_CONFIG + '\n[health]\nlisten = "127.0.0.1:9137"\nprobe_interval = 0\n'
                "audit_interval = 3600\n"
            )
        )
    )

    async def scenario() -> None:
        daemon = Daemon(config, asyncio.get_running_loop())
        await daemon.start()
        try:
            health = next(s for s in daemon.services if s.name == "health")
            audits = health.endpoints.audits  # type: ignore[attr-defined]
            run = await audits.run_once()
            assert run.passed, run.failures
            smb = next(s for s in daemon.services if s.name == "smb")
            await smb.tcp.active.pop(("127.0.0.12", 445, False)).close()  # type: ignore[attr-defined]
            run = await audits.run_once()
            assert not run.passed
            failing = {(f.node, f.check) for f in run.failures}
            assert ("SQL01-CZ2", "smb2") in failing
            assert all(node == "SQL01-CZ2" for node, _ in failing)
            smb2 = next(f for f in run.failures if f.check == "smb2")
            assert any("refused" in reason for reason in smb2.reasons), smb2
            status = json.loads((await get_async("/status"))[1])["audit"]
            assert status["interval"] == 3600 and status["last"]["passed"] is False
            assert {(f["node"], f["check"]) for f in status["last"]["failures"]} == failing
            text = (await get_async("/metrics"))[1].decode()
            assert promtool(text).returncode == 0
            assert metric_values(text, "cozen_audit_passed") == {(): 0}
            failures = metric_values(text, "cozen_audit_failures")
            assert failures[(("check", "smb2"), ("node", "SQL01-CZ2"))] == 1
            page = (await get_async("/"))[1].decode()
            assert '<span class="badge failing">FAIL</span>' in page
            assert '<table id="audit-failures">' in page and "SQL01-CZ2" in page
            # readiness is this daemon serving (here: 445 unbound), not the network's view
            code, body = await get_async("/readyz")
            assert code == 503  # for the unbound listener alone
            smb_state = json.loads(body)["nodes"]["SQL01-CZ2"]["smb"]
            assert smb_state["reasons"] == ["127.0.0.12:445 not bound"]
            assert b"audit" not in body
        finally:
            await daemon.stop()

    run_on(loop_kind, scenario)
