"""DNS registration with GSS-TSIG (RFC 3645) against a real MIT KDC and BIND 9.

The module's realm and KDC (tests/interop/kerberos.py) and one ``named``
on 127.0.0.55 taking GSS-TSIG from DNS/ns.corp.example's keytab; the
daemon's principal is granted SQL01-CZ1's names only. Every test starts
from emptied zones and a running KDC. Waits are bounded polls; no
assertion reads the wall clock.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.interop.dns_servers import dig_answer, wait_until
from tests.interop.kerberos import DAEMON_PRINCIPAL, DNS_PRINCIPAL, GssNamed, Kdc

pytestmark = pytest.mark.interop

NAMED = "127.0.0.55"
DAEMON_DNS = "127.0.0.10"
HEALTH = "127.0.0.9:9138"
CZ1, CZ2 = "sql01-cz1.corp.example.", "sql01-cz2.corp.example."
PTR11, PTR12 = "11.0.0.127.in-addr.arpa.", "12.0.0.127.in-addr.arpa."
NODE1 = '[[node]]\ncozen_name = "SQL01-CZ1"\nmanagement_ip = "127.0.0.11"\n'
NODE1_V6 = NODE1 + 'management_ipv6 = "fd00::11"\n'
NODE2 = '[[node]]\ncozen_name = "SQL01-CZ2"\nmanagement_ip = "127.0.0.12"\n'


def config(keytab: str | None, *, nodes: str = NODE1_V6, extra: str = "") -> str:
    tab = f'keytab = "{keytab}"\n' if keytab else ""
    return (
        '[cluster]\nname = "SQL01"\ndns_domain = "corp.example"\nworkgroup = "CORP"\n\n'
        f'[dns]\nlisten = ["{DAEMON_DNS}"]\n\n[netbios]\nbroadcast = false\n\n'
        f'[smb]\nenabled = false\n\n[health]\nlisten = "{HEALTH}"\n\n'
        f'[registration.dns]\nserver = "{NAMED}"\nauth = "gss-tsig"\n'
        f'principal = "{DAEMON_PRINCIPAL}"\n{tab}server_principal = "{DNS_PRINCIPAL}"\n'
        f"refresh_seconds = 1\n{extra}\n" + nodes
    )


@pytest.fixture(scope="module")
def kdc(tmp_path_factory) -> Iterator[Kdc]:
    realm = Kdc(tmp_path_factory.mktemp("kdc"))
    realm.create()
    realm.start()
    try:
        yield realm
    finally:
        realm.stop()


@pytest.fixture(scope="module")
def named(kdc: Kdc, tmp_path_factory) -> Iterator[GssNamed]:
    server = GssNamed(NAMED, tmp_path_factory.mktemp("named-gss"), kdc=kdc)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.remove_address()


@pytest.fixture
def zone(named: GssNamed, kdc: Kdc) -> GssNamed:
    if kdc.proc is None:
        kdc.start()
    named.reset()
    return named


@pytest.fixture
def gss_daemon(kdc: Kdc, write_config, start_daemon):
    def start(text: str):
        return start_daemon(write_config(text), env=kdc.env)

    return start


def dig(*args: str, server: str = NAMED) -> str:
    return dig_answer(server, *args)


def status() -> dict:
    with urllib.request.urlopen(f"http://{HEALTH}/status", timeout=2) as answer:
        return json.load(answer)["registration"]


def registered(server: GssNamed) -> bool:
    return (
        server.records(CZ1, "A") == {"127.0.0.11"}
        and server.records(CZ1, "AAAA") == {"fd00::11"}
        and server.records(PTR11, "PTR") == {CZ1}
        and len(server.records(CZ1, "DHCID")) == 1
        and len(server.records(PTR11, "DHCID")) == 1
    )


def test_register_refresh_after_rekey_and_withdraw(zone, kdc, gss_daemon):
    extra = "rekey_seconds = 2\ntkey_lifetime = 60\n"
    daemon = gss_daemon(config(str(kdc.daemon_keytab), extra=extra))
    wait_until(lambda: registered(zone), 15, "the records in named through GSS-TSIG")
    assert "127.0.0.11" in dig(CZ1, "A") and CZ1 in dig("-x", "127.0.0.11")
    assert len(dig(CZ1, "DHCID").splitlines()) == 1
    daemon.wait_for_log("GSS-TSIG security context set up as " + DAEMON_PRINCIPAL)
    signer = re.escape(DAEMON_PRINCIPAL.replace("@", "\\@"))  # as BIND prints the identity
    authenticated = re.compile(rf"/key {signer}: updating zone 'corp.example/IN': adding an RR")
    assert authenticated.search(zone.log()), zone.log()[-3000:]
    # past the rekey interval (2 s), a record deleted by hand comes back under a new context
    time.sleep(2.5)
    assert daemon.log().count("GSS-TSIG security context set up") == 1
    update = zone.admin_update("corp.example")
    update.delete(CZ1, "A")
    assert zone.send(update) == "NOERROR"
    wait_until(lambda: registered(zone), 15, "the deleted record restored")
    wait_until(lambda: daemon.log().count("GSS-TSIG security context set up") >= 2, 15, "a rekey")
    assert status()["key"] == f"{DAEMON_PRINCIPAL} (gss-tsig)"
    assert daemon.stop() == 0
    assert daemon.log().count(": withdrawn") == 3
    assert zone.records(CZ1, "A") == set() and zone.records(PTR11, "PTR") == set()


def test_default_server_principal_and_a_reload_that_keeps_the_context(zone, kdc, gss_daemon):
    """No server_principal: DNS/<the SOA MNAME the server serves>; SIGHUP keeps the context."""
    text = config(str(kdc.daemon_keytab)).replace(f'server_principal = "{DNS_PRINCIPAL}"\n', "")
    assert "server_principal" not in text
    daemon = gss_daemon(text)
    wait_until(lambda: registered(zone), 15, "the records in named through GSS-TSIG")
    daemon.wait_for_log(f"set up as {DAEMON_PRINCIPAL} with DNS/ns1.corp.example at {NAMED}")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")
    update = zone.admin_update("corp.example")
    update.delete(CZ1, "A")
    assert zone.send(update) == "NOERROR"
    wait_until(lambda: registered(zone), 15, "the deleted record restored after the reload")
    assert daemon.log().count("GSS-TSIG security context set up") == 1  # reused, not renewed


def test_a_name_outside_the_grant_is_refused(zone, kdc, gss_daemon):
    daemon = gss_daemon(config(str(kdc.daemon_keytab), nodes=f"{NODE1}\n{NODE2}"))
    daemon.wait_for_log("sql01-cz2.corp.example (A 127.0.0.12, DHCID): REFUSED")
    wait_until(lambda: zone.records(CZ1, "A") == {"127.0.0.11"}, 15, "CZ1 registered")
    assert zone.records(CZ2, "A") == set()
    line = next(li for li in daemon.log().splitlines() if "cz2.corp.example (A" in li)
    assert f"update-policy / ACL grant {DAEMON_PRINCIPAL} these names" in line, line
    assert status()["outcomes"]["REFUSED"] >= 1


def no_change(zone: GssNamed) -> bool:
    return zone.names("corp.example") == set()


def kerberos_failure(zone, gss_daemon, text: str, outcome: str, fragment: str) -> None:
    daemon = gss_daemon(text)
    daemon.wait_for_log(f": {outcome}: ")
    line = next(li for li in daemon.log().splitlines() if "GSS-TSIG as" in li)
    assert DAEMON_PRINCIPAL in line and outcome in line and fragment in line, line
    assert no_change(zone)
    wait_until(lambda: status()["outcomes"].get(outcome, 0) >= 1, 5, "the outcome counted")
    assert "127.0.0.11" in dig(CZ1, "A", server=DAEMON_DNS)  # answering goes on


def test_a_wrong_keytab_is_reported_and_changes_nothing(zone, kdc, gss_daemon, tmp_path):
    wrong = tmp_path / "old.keytab"
    wrong.write_bytes(kdc.daemon_keytab.read_bytes())
    os.chmod(wrong, 0o600)
    kdc.kadmin(f"cpw -randkey {DAEMON_PRINCIPAL}")  # the keytab is now out of date
    kdc.kadmin(f"ktadd -k {kdc.daemon_keytab} {DAEMON_PRINCIPAL}")
    kerberos_failure(
        zone, gss_daemon, config(str(wrong)), "KRB_BAD_KEYTAB", "keytab is wrong or out of date"
    )


def test_no_ticket_is_reported(zone, gss_daemon):
    kerberos_failure(zone, gss_daemon, config(None), "KRB_NO_CREDENTIALS", "kinit")


def test_a_kdc_that_is_down_is_reported(zone, kdc, gss_daemon):
    kdc.stop()
    kerberos_failure(
        zone, gss_daemon, config(str(kdc.daemon_keytab)), "KRB_KDC_UNREACHABLE", "no KDC"
    )


def test_an_unknown_server_principal_is_reported(zone, kdc, gss_daemon):
    text = config(str(kdc.daemon_keytab)).replace(DNS_PRINCIPAL, "DNS/nope.corp.example")
    kerberos_failure(zone, gss_daemon, text, "KRB_UNKNOWN_SERVER", "server_principal")


def test_clock_skew_beyond_kerberos_tolerance_is_reported(zone, kdc, write_config, start_daemon):
    (library,) = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    skewed = {"LD_PRELOAD": library, "FAKETIME": "+3h", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    daemon = start_daemon(write_config(config(str(kdc.daemon_keytab))), env=kdc.env | skewed)
    daemon.wait_for_log(": KRB_CLOCK_SKEW: ")
    line = next(li for li in daemon.log().splitlines() if "GSS-TSIG as" in li)
    assert DAEMON_PRINCIPAL in line and "the KDC or the DNS server differ" in line, line
    assert no_change(zone)
    assert "127.0.0.11" in dig(CZ1, "A", server=DAEMON_DNS)
