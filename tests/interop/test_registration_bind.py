"""DNS registration (RFC 2136 + TSIG + RFC 4703) against a real BIND 9 primary.

One ``named`` serves the module on 127.0.0.53 with a dynamic forward zone
(corp.example), dynamic reverse zones for 127.0.0.0/24 and fd00::/64 and two
TSIG keys (see tests/interop/dns_servers.py); every test starts from emptied
zones. The daemons refresh every second, so "at the next refresh" is a
bounded poll of a few seconds. No assertion reads the wall clock.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from protocols.dns.ownership import mac_dhcid
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import NameQueryRequest, NameQueryResponse, NmFlags, decode_packet
from protocols.netbios.nbns_encode import encode_name_query_request
from responder.config import load_config
from responder.identity import derived_mac
from responder.services.registration import RegistrationService
from responder.tools import audit
from responder.tools.audit import registration_dns_server
from tests.helpers import loop_kinds, run_on
from tests.interop.dns_servers import (
    FORWARD,
    KEY_NAME,
    REVERSE4,
    REVERSE6,
    Named,
    dig_answer,
    new_secret,
    wait_until,
)
from tests.responder.services.test_health import promtool

pytestmark = pytest.mark.interop

NAMED = "127.0.0.53"
DAEMON_DNS = "127.0.0.10"
HEALTH = "127.0.0.9:9137"
CZ1 = f"sql01-cz1.{FORWARD}."
CZ2 = f"sql01-cz2.{FORWARD}."
CZ3 = f"sql01-cz3.{FORWARD}."
PTR11, PTR12 = "11.0.0.127.in-addr.arpa.", "12.0.0.127.in-addr.arpa."
NODE1 = '[[node]]\ncozen_name = "SQL01-CZ1"\nmanagement_ip = "127.0.0.11"\n'
NODE1_V6 = NODE1 + 'management_ipv6 = "fd00::11"\n'
NODE2 = '[[node]]\ncozen_name = "SQL01-CZ2"\nmanagement_ip = "127.0.0.12"\n'


def dhcid_text(cozen_name: str, fqdn: str) -> str:
    return base64.b64encode(mac_dhcid(derived_mac(cozen_name), fqdn)).decode()


def config(
    secret: str,
    *,
    nodes: str = f"{NODE1_V6}\n{NODE2}",
    extra: str = "",
    listen: str = DAEMON_DNS,
    health: str = HEALTH,
    key: str = KEY_NAME,
    server: str | None = NAMED,
) -> str:
    target = f'server = "{server}"\n' if server else ""
    return (
        '[cluster]\nname = "SQL01"\ndns_domain = "corp.example"\nworkgroup = "CORP"\n\n'
        f'[dns]\nlisten = ["{listen}"]\n\n[netbios]\nbroadcast = false\n\n'
        f'[smb]\nenabled = false\n\n[health]\nlisten = "{health}"\n\n'
        f'[registration.dns]\n{target}tsig_name = "{key}"\n'
        f'tsig_secret = "{secret}"\nrefresh_seconds = 1\n{extra}\n' + nodes
    )


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> Iterator[Named]:
    server = Named(NAMED, tmp_path_factory.mktemp("named"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.remove_address()


@pytest.fixture
def zone(named: Named) -> Named:
    """The module's named, running, with emptied zones."""
    if named.proc is None:
        named.start()
    named.reset()
    return named


def registered(server: Named) -> bool:
    return (
        server.records(CZ1, "A") == {"127.0.0.11"}
        and server.records(CZ1, "AAAA") == {"fd00::11"}
        and server.records(CZ2, "A") == {"127.0.0.12"}
        and server.records(PTR11, "PTR") == {CZ1}
        and server.records(PTR12, "PTR") == {CZ2}
        and server.records(f"1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.{REVERSE6}.", "PTR") == {CZ1}
    )


def status(health: str = HEALTH) -> dict:
    with urllib.request.urlopen(f"http://{health}/status", timeout=2) as answer:
        return json.load(answer)["registration"]


def fetch_metrics(health: str = HEALTH) -> str:
    with urllib.request.urlopen(f"http://{health}/metrics", timeout=2) as answer:
        return answer.read().decode()


def states(health: str = HEALTH) -> dict[str, str]:
    return {r["name"]: r["state"] for r in status(health)["records"]}


def dig(*args: str) -> str:
    return dig_answer(NAMED, *args)


def still_answering() -> None:
    """The daemon's own DNS and NBNS answer for the Cozen name."""
    answer = dns.query.udp(dns.message.make_query(CZ1, "A"), DAEMON_DNS, timeout=2)
    assert answer.rcode() == dns.rcode.NOERROR and "127.0.0.11" in answer.to_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        request = NameQueryRequest(0x4242, NetbiosName("SQL01-CZ1"), NmFlags.NONE)
        sock.sendto(encode_name_query_request(request), ("127.0.0.11", 137))
        reply = decode_packet(sock.recvfrom(2048)[0])
    assert isinstance(reply, NameQueryResponse) and reply.rcode == 0


# ---------------------------------------------------------------- register, withdraw


def test_register_then_withdraw_at_stop(zone, write_config, start_daemon):
    daemon = start_daemon(write_config(config(zone.secret)))
    wait_until(lambda: registered(zone), 10, "the records in named")
    assert "127.0.0.11" in dig(CZ1, "A")
    assert CZ1 in dig("-x", "127.0.0.11") and CZ1 in dig("-x", "fd00::11")
    mine = dhcid_text("SQL01-CZ1", CZ1)
    assert {r.replace(" ", "") for r in zone.records(CZ1, "DHCID")} == {mine}
    assert {r.replace(" ", "") for r in zone.records(PTR11, "DHCID")} == {mine}
    wait_until(lambda: set(states().values()) == {"registered"}, 5, "/status registered")
    record = next(r for r in status()["records"] if r["name"] == CZ1.rstrip("."))
    assert record["last_outcome"] == "NOERROR" and record["last_time"].endswith("Z")
    assert record["records"] == ["A 127.0.0.11", "AAAA fd00::11", "DHCID"]
    assert status()["outcomes"]["NOERROR"] >= 5
    metrics = fetch_metrics()
    assert promtool(metrics).returncode == 0, metrics
    name = CZ1.rstrip(".")
    assert (
        f'cozen_dns_registration_state{{name="{name}",state="registered",zone="corp.example"}}'
        in (metrics)
    )
    assert 'cozen_dns_registration_outcomes_total{outcome="NOERROR"}' in metrics
    assert daemon.stop() == 0
    assert daemon.log().count(": withdrawn") == 5
    assert "not withdrawn" not in daemon.log()
    assert zone.names(FORWARD) == set() and zone.names(REVERSE4) == set()
    assert zone.names(REVERSE6) == set()


def test_withdraw_on_stop_false_keeps_the_records(zone, write_config, start_daemon):
    daemon = start_daemon(write_config(config(zone.secret, extra="withdraw_on_stop = false")))
    wait_until(lambda: registered(zone), 10, "the records in named")
    assert daemon.stop() == 0
    assert zone.records(CZ1, "A") == {"127.0.0.11"} and "withdrawn" not in daemon.log()


def test_a_record_deleted_by_hand_comes_back(zone, write_config, start_daemon):
    start_daemon(write_config(config(zone.secret)))
    wait_until(lambda: registered(zone), 10, "the records in named")
    update = zone.admin_update(FORWARD)
    update.delete(CZ1, "A")
    assert zone.send(update) == "NOERROR"
    update = zone.admin_update(REVERSE4)
    update.delete(PTR12)  # every RRset, the DHCID too
    assert zone.send(update) == "NOERROR"
    assert zone.records(CZ1, "A") == set()
    wait_until(lambda: registered(zone), 10, "the deleted records restored")


# ---------------------------------------------------------------- conflicts


def plant(server: Named, owner: str, *records: str) -> None:
    update = server.admin_update(FORWARD)
    for text in records:
        rdtype, data = text.split(" ", 1)
        update.add(owner, 300, rdtype, data)
    assert server.send(update) == "NOERROR"


def test_check_with_dhcid_leaves_a_static_record_and_reports_it(zone, write_config, start_daemon):
    plant(zone, CZ1, "A 10.9.9.9")
    serial = zone.serial()
    daemon = start_daemon(write_config(config(zone.secret, nodes=f"{NODE1}\n{NODE2}")))
    daemon.wait_for_log("sql01-cz1.corp.example (A 127.0.0.11, DHCID): conflict")
    wait_until(lambda: zone.records(PTR12, "PTR") == {CZ2}, 10, "CZ2 registered")
    line = next(li for li in daemon.log().splitlines() if "cz1.corp.example (A" in li)
    assert "zone corp.example" in line and "A 10.9.9.9; no DHCID" in line
    daemon.wait_for_log("11.0.0.127.in-addr.arpa (PTR sql01-cz1.corp.example., DHCID): conflict")
    time.sleep(2.5)  # two more refreshes: still one line per name, still untouched
    assert daemon.log().count(": conflict") == 2  # the name, and the PTR that would name it
    assert zone.records(CZ1, "A") == {"10.9.9.9"} and zone.records(CZ1, "DHCID") == set()
    assert zone.records(PTR11, "PTR") == set()  # no PTR to a name someone else holds
    record = next(r for r in status()["records"] if r["name"] == CZ1.rstrip("."))
    assert record["state"] == "conflict" and record["conflict_with"] == "A 10.9.9.9; no DHCID"
    assert zone.records(CZ2, "A") == {"127.0.0.12"} and zone.serial() > serial
    assert daemon.stop() == 0
    assert zone.records(CZ1, "A") == {"10.9.9.9"}  # not ours: not withdrawn either


def test_a_ptr_is_taken_back_when_its_name_is_taken(zone, write_config, start_daemon):
    daemon = start_daemon(write_config(config(zone.secret, nodes=NODE1)))
    wait_until(lambda: zone.records(PTR11, "PTR") == {CZ1}, 10, "CZ1 registered")
    update = zone.admin_update(FORWARD)
    update.delete(CZ1)
    update.add(CZ1, 300, "A", "10.9.9.9")  # an admin makes the name static
    assert zone.send(update) == "NOERROR"
    wait_until(lambda: zone.records(PTR11, "PTR") == set(), 10, "the PTR withdrawn")
    assert zone.records(CZ1, "A") == {"10.9.9.9"}
    daemon.wait_for_log("its forward name sql01-cz1.corp.example is someone else's")


def test_check_exists_with_dhcid_takes_over_only_a_dhcid_name(zone, write_config, start_daemon):
    plant(zone, CZ1, "A 10.9.9.9")
    plant(zone, CZ2, "A 10.9.9.8", f"DHCID {dhcid_text('ELSEWHERE', CZ2)}")
    extra = 'conflict = "check-exists-with-dhcid"'
    daemon = start_daemon(write_config(config(zone.secret, nodes=f"{NODE1}\n{NODE2}", extra=extra)))
    wait_until(lambda: zone.records(CZ2, "A") == {"127.0.0.12"}, 10, "CZ2 taken over")
    assert {r.replace(" ", "") for r in zone.records(CZ2, "DHCID")} == {
        dhcid_text("SQL01-CZ2", CZ2)
    }
    daemon.wait_for_log("sql01-cz1.corp.example (A 127.0.0.11, DHCID): conflict")
    assert zone.records(CZ1, "A") == {"10.9.9.9"} and zone.records(CZ1, "DHCID") == set()
    daemon.wait_for_log("registered, taken over")


def test_no_check_overwrites(zone, write_config, start_daemon):
    plant(zone, CZ1, "A 10.9.9.9")
    extra = 'conflict = "no-check"'
    daemon = start_daemon(write_config(config(zone.secret, nodes=NODE1, extra=extra)))
    wait_until(lambda: zone.records(CZ1, "A") == {"127.0.0.11"}, 10, "CZ1 overwritten")
    assert zone.records(CZ1, "DHCID") != set() and "conflict" not in daemon.log()


# ---------------------------------------------------------------- failures


def faketime_env(offset: str) -> dict[str, str]:
    (library,) = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return {"LD_PRELOAD": library, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.mark.parametrize(
    ("case", "outcome", "reason"),
    [
        ("wrong secret", "BADSIG", "is the secret of key cozen-key. right?"),
        ("unknown key", "BADKEY", "the server does not know key nobody-key. (hmac-sha256)"),
        ("clock skew", "BADTIME", "clock and the server's differ by more than the fudge"),
    ],
)
def test_tsig_failures_change_nothing_and_answering_goes_on(
    zone, write_config, start_daemon, case, outcome, reason
):
    secret, key, env = zone.secret, KEY_NAME, None
    if case == "wrong secret":
        secret = new_secret()
    elif case == "unknown key":
        key = "nobody-key"
    else:
        env = faketime_env("+3h")
    serial = zone.serial()
    daemon = start_daemon(write_config(config(secret, key=key)), env=env)
    daemon.wait_for_log(f": {outcome}: add: ", count=5)
    line = next(li for li in daemon.log().splitlines() if "sql01-cz1.corp.example (" in li)
    assert "zone corp.example via 127.0.0.53:53" in line and reason in line, line
    still_answering()
    time.sleep(1.5)  # retried with backoff, each outcome logged once per record set
    assert daemon.log().count(f": {outcome}: ") == 5
    counts = status()["outcomes"]
    assert counts[outcome] >= 5
    assert set(states().values()) == {"error"}
    still_answering()
    assert zone.serial() == serial and zone.names(FORWARD) == set()
    assert daemon.stop() == 0


def test_a_server_down_at_start_gets_the_records_when_it_comes_back(
    zone, write_config, start_daemon
):
    zone.stop()
    daemon = start_daemon(write_config(config(zone.secret)))
    daemon.wait_for_log(": UNREACHABLE: query: the server cannot be reached")
    still_answering()
    wait_until(lambda: set(states().values()) == {"error"}, 5, "every set in error")
    zone.start()
    wait_until(lambda: registered(zone), 10, "the records once named is back")
    daemon.wait_for_log("registered, added")


# ---------------------------------------------------------------- reload, pairs, discovery


def test_reload_adds_removes_and_readdresses(zone, write_config, start_daemon):
    path = write_config(config(zone.secret))
    daemon = start_daemon(path)
    wait_until(lambda: registered(zone), 10, "the records in named")
    node1 = '[[node]]\ncozen_name = "SQL01-CZ1"\nmanagement_ip = "127.0.0.21"\n'
    node3 = '[[node]]\ncozen_name = "SQL01-CZ3"\nmanagement_ip = "127.0.0.13"\n'
    path.write_text(config(zone.secret, nodes=f"{node1}\n{node3}"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")

    def converged() -> bool:
        return (
            zone.records(CZ1, "A") == {"127.0.0.21"}
            and zone.records(CZ1, "AAAA") == set()
            and zone.records("21.0.0.127.in-addr.arpa.", "PTR") == {CZ1}
            and zone.records(PTR11, "PTR") == set()
            and zone.names(REVERSE6) == set()
            and zone.records(CZ2, "A") == set()
            and zone.records(PTR12, "PTR") == set()
            and zone.records(CZ3, "A") == {"127.0.0.13"}
            and zone.records("13.0.0.127.in-addr.arpa.", "PTR") == {CZ3}
        )

    wait_until(converged, 10, "the zones to follow the reload")
    assert zone.names(FORWARD) == {CZ1, CZ3}
    daemon.wait_for_log(": withdrawn", count=4)  # CZ2, its PTR, CZ1's old PTR and ip6 PTR
    daemon.wait_for_log("registered, replaced (A, AAAA)")


def test_a_redundant_pair_converges_without_flapping(zone, write_config, start_daemon):
    first = config(zone.secret, extra="withdraw_on_stop = false")
    second = config(
        zone.secret, extra="withdraw_on_stop = false", listen="127.0.0.20", health="127.0.0.9:9138"
    ).replace("[netbios]\n", "[netbios]\nport = 1137\n")
    daemons = [
        start_daemon(write_config(first), wait_ready=False),
        start_daemon(write_config(second), wait_ready=False),
    ]
    for daemon in daemons:  # started together, so both race for the names
        daemon.wait_for_log("ready")
    wait_until(lambda: registered(zone), 10, "the records in named")
    for health in (HEALTH, "127.0.0.9:9138"):
        wait_until(lambda h=health: set(states(h).values()) == {"registered"}, 10, "registered")
    serial = zone.serial()
    snapshot = zone_contents(zone)
    for _ in range(4):  # four more refreshes of each daemon
        time.sleep(1.0)
        assert zone.serial() == serial
    assert zone_contents(zone) == snapshot
    for daemon in daemons:
        assert "WARNING responder.services.registration" not in daemon.log()


def zone_contents(server: Named) -> dict[tuple[str, str], set[str]]:
    return {
        (name, rdtype): server.records(name, rdtype)
        for name in server.names(FORWARD)
        for rdtype in ("A", "AAAA", "DHCID")
    }


@pytest.mark.parametrize("loop_kind", loop_kinds())
def test_the_server_defaults_to_the_soa_mname(zone, write_config, loop_kind):
    config_ = load_config(str(write_config(config(zone.secret, nodes=NODE1, server=None))))

    async def scenario() -> None:
        import asyncio

        service = RegistrationService(asyncio.get_running_loop(), nameservers=[NAMED])
        await service.apply(config_, 1)
        try:
            for _ in range(100):
                if zone.records(CZ1, "A") == {"127.0.0.11"}:
                    break
                await asyncio.sleep(0.05)
            assert zone.records(CZ1, "A") == {"127.0.0.11"}
            assert service.status()["servers"][FORWARD] == f"{NAMED}:53"  # ns1 = named
        finally:
            await service.stop()
        assert zone.names(FORWARD) == set()

    run_on(loop_kind, scenario)


# ---------------------------------------------------------------- audit's site-dns column


def audit_site_dns(path: object) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "responder", "audit", "--config", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout, done.stderr
    nodes = json.loads(done.stdout)["nodes"]
    return {n["node"]: n["checks"]["site-dns"] for n in nodes}


def test_audit_checks_the_records_at_the_site_dns(zone, write_config, start_daemon):
    """Registered: site-dns ok. A record deleted behind the daemon's back: the cell names it.

    The daemon's periodic audit (``[health] audit_interval``) sees the same drift in /status.
    """
    text = config(zone.secret).replace("refresh_seconds = 1", "refresh_seconds = 600")
    text = text.replace(f'listen = "{HEALTH}"\n', f'listen = "{HEALTH}"\naudit_interval = 1\n')
    path = write_config(text)
    start_daemon(path)
    wait_until(lambda: registered(zone), 10, "the records in named")
    cells = audit_site_dns(path)
    assert cells == {n: {"ok": True, "reasons": []} for n in ("SQL01-CZ1", "SQL01-CZ2")}
    wait_until(lambda: status_audit_runs() >= 2, 15, "two periodic audits")
    assert site_dns_failing() == set()
    update = zone.admin_update(FORWARD)
    update.delete(CZ1, "AAAA")
    assert zone.send(update) == "NOERROR"
    update = zone.admin_update(REVERSE4)
    update.delete(PTR12, "PTR")
    assert zone.send(update) == "NOERROR"
    cells = audit_site_dns(path)
    assert cells["SQL01-CZ1"]["ok"] is False and cells["SQL01-CZ2"]["ok"] is False
    (reason,) = cells["SQL01-CZ1"]["reasons"]
    assert reason.startswith(f"at {NAMED}:53: AAAA {CZ1.rstrip('.')} missing")
    assert "expected fd00::11" in reason
    (reason,) = cells["SQL01-CZ2"]["reasons"]
    assert reason.startswith(f"at {NAMED}:53: PTR {PTR12.rstrip('.')} missing")
    assert reason.endswith(f"expected {CZ2.rstrip('.')}")
    wait_until(lambda: site_dns_failing() == {"SQL01-CZ1", "SQL01-CZ2"}, 15, "the periodic audit")


def status_audit_runs() -> int:
    with urllib.request.urlopen(f"http://{HEALTH}/status", timeout=2) as answer:
        return int(json.load(answer)["audit"]["runs"])


def site_dns_failing() -> set[str]:
    with urllib.request.urlopen(f"http://{HEALTH}/status", timeout=2) as answer:
        last = json.load(answer)["audit"]["last"] or {"failures": []}
    return {f["node"] for f in last["failures"] if f["check"] == "site-dns"}


def test_audit_finds_the_site_dns_as_registration_does(zone, write_config):
    """No ``server``: the zone's SOA MNAME; none to be found: "-" with the reason."""
    config_ = load_config(str(write_config(config(zone.secret, nodes=NODE1, server=None))))
    found = asyncio.run(registration_dns_server(config_, [NAMED]))
    assert found == (NAMED, 53)
    missing = asyncio.run(registration_dns_server(config_, ["127.0.0.254"]))
    assert isinstance(missing, str) and "SOA MNAME of corp.example not found" in missing
    assert audit.Cell(None, (missing,)).text == f"- ({missing})"
