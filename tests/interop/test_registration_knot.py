"""DNS registration against a real Knot DNS primary: register, repair at refresh, withdraw.

``knotd`` serves the module on 127.0.0.54 with the same zones and keys as the
BIND tests, its update ACL limited to the daemon's types (A, AAAA, DHCID,
PTR) as the README shows; Knot's ACL lets the admin key plant and delete
records. The daemon refreshes every second; every wait is a bounded poll.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from protocols.dns.ownership import mac_dhcid
from responder.identity import derived_mac
from tests.interop.dns_servers import FORWARD, KEY_NAME, REVERSE4, REVERSE6, Knot, wait_until

pytestmark = pytest.mark.interop

KNOT = "127.0.0.54"
CZ1 = f"sql01-cz1.{FORWARD}."
CZ2 = f"sql01-cz2.{FORWARD}."
PTR11 = "11.0.0.127.in-addr.arpa."
PTR6 = f"1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.{REVERSE6}."


def config(secret: str, extra: str = "") -> str:
    return (
        '[cluster]\nname = "SQL01"\ndns_domain = "corp.example"\nworkgroup = "CORP"\n\n'
        '[dns]\nlisten = ["127.0.0.10"]\n\n[netbios]\nbroadcast = false\n\n'
        "[smb]\nenabled = false\n\n"
        f'[registration.dns]\nserver = "{KNOT}"\ntsig_name = "{KEY_NAME}"\n'
        f'tsig_secret = "{secret}"\nrefresh_seconds = 1\n{extra}\n'
        '[[node]]\ncozen_name = "SQL01-CZ1"\nmanagement_ip = "127.0.0.11"\n'
        'management_ipv6 = "fd00::11"\n\n'
        '[[node]]\ncozen_name = "SQL01-CZ2"\nmanagement_ip = "127.0.0.12"\n'
    )


@pytest.fixture(scope="module")
def knot(tmp_path_factory) -> Iterator[Knot]:
    server = Knot(KNOT, tmp_path_factory.mktemp("knot"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zone(knot: Knot) -> Knot:
    knot.reset()
    return knot


def registered(server: Knot) -> bool:
    return (
        server.records(CZ1, "A") == {"127.0.0.11"}
        and server.records(CZ1, "AAAA") == {"fd00::11"}
        and server.records(CZ2, "A") == {"127.0.0.12"}
        and server.records(PTR11, "PTR") == {CZ1}
        and server.records(PTR6, "PTR") == {CZ1}
    )


def test_register_repair_and_withdraw(zone, write_config, start_daemon):
    daemon = start_daemon(write_config(config(zone.secret)))
    wait_until(lambda: registered(zone), 10, "the records in knotd")
    mine = base64.b64encode(mac_dhcid(derived_mac("SQL01-CZ1"), CZ1)).decode()
    assert {r.replace(" ", "") for r in zone.records(CZ1, "DHCID")} == {mine}
    update = zone.admin_update(FORWARD)
    update.delete(CZ1, "AAAA")
    assert zone.send(update) == "NOERROR"
    wait_until(lambda: zone.records(CZ1, "AAAA") == {"fd00::11"}, 10, "AAAA restored")
    daemon.wait_for_log("registered, replaced (AAAA)")
    serial = zone.serial()
    assert daemon.stop() == 0
    # Knot sometimes answers an UPDATE after most of a second, past the daemon's 1 s stop
    # budget; the withdrawals were sent all the same, so they land.
    wait_until(lambda: all(not zone.names(z) for z in (FORWARD, REVERSE4, REVERSE6)), 5, "empty")
    assert zone.serial(FORWARD) > serial


def test_a_static_name_is_left_alone(zone, write_config, start_daemon):
    update = zone.admin_update(FORWARD)
    update.add(CZ2, 300, "A", "10.9.9.8")
    assert zone.send(update) == "NOERROR"
    daemon = start_daemon(write_config(config(zone.secret)))
    daemon.wait_for_log("sql01-cz2.corp.example (A 127.0.0.12, DHCID): conflict")
    wait_until(lambda: zone.records(CZ1, "A") == {"127.0.0.11"}, 10, "CZ1 registered")
    assert zone.records(CZ2, "A") == {"10.9.9.8"} and zone.records(CZ2, "DHCID") == set()
    assert daemon.stop() == 0
    wait_until(lambda: zone.names(FORWARD) == {CZ2}, 5, "only the static name left")
