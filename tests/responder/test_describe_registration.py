"""``check``'s registration lines: one per zone, then every record set, per node."""

from __future__ import annotations

import base64
import os

from responder.config import load_config
from responder.describe import describe
from responder.identity import node_identities
from tests.helpers import BASE_CONFIG

SECRET = base64.b64encode(b"d" * 32).decode()


def test_off_without_the_section(write_config):
    assert describe(load_config(str(write_config()))).endswith("\nregistration: off")


def test_zones_then_records(write_config):
    text = BASE_CONFIG.replace(
        'management_ip = "127.0.0.12"', 'management_ip = "127.0.0.12"\nmanagement_ipv6 = "fd00::12"'
    ) + (
        f'[registration.dns]\nserver = "127.0.0.53"\ntsig_name = "cozen-key"\n'
        f'tsig_secret = "{SECRET}"\nreverse_zones = ["0.0.127.in-addr.arpa"]\n'
        'conflict = "no-check"\nwithdraw_on_stop = false\n'
    )
    config = load_config(str(write_config(text)))
    lines = describe(config).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("registration:"))
    cz1, cz2 = (base64.b64encode(n.dhcid).decode() for n in node_identities(config))
    assert lines[start:] == [
        "registration: zone corp.example via 127.0.0.53:53, key cozen-key. hmac-sha256 "
        "(inline secret), conflict no-check, ttl 300, refresh 600 s, records kept at stop",
        "registration: zone 0.0.127.in-addr.arpa via 127.0.0.53:53, key cozen-key. hmac-sha256 "
        "(inline secret), conflict no-check, ttl 300, refresh 600 s, records kept at stop",
        "  SQL01-CZ1       corp.example              sql01-cz1.corp.example "
        f"A 127.0.0.11, DHCID {cz1}",
        "  SQL01-CZ1       0.0.127.in-addr.arpa      11.0.0.127.in-addr.arpa "
        f"PTR sql01-cz1.corp.example., DHCID {cz1}",
        "  SQL01-CZ2       corp.example              sql01-cz2.corp.example "
        f"A 127.0.0.12, AAAA fd00::12, DHCID {cz2}",
        "  SQL01-CZ2       0.0.127.in-addr.arpa      12.0.0.127.in-addr.arpa "
        f"PTR sql01-cz2.corp.example., DHCID {cz2}",
        "  SQL01-CZ2       fd00::12: no reverse zone holds it, no PTR",
    ]


def test_mname_default_and_secret_file(write_config, tmp_path):
    key = tmp_path / "cozen.key"
    key.write_text(SECRET)
    os.chmod(key, 0o600)
    text = BASE_CONFIG + (
        f'[registration.dns]\ntsig_name = "k"\ntsig_secret_file = "{key}"\nport = 5353\n'
        'tsig_algorithm = "hmac-sha512"\n'
    )
    line = next(
        li
        for li in describe(load_config(str(write_config(text)))).splitlines()
        if li.startswith("registration:")
    )
    assert line == (
        "registration: zone corp.example via the zone's SOA MNAME (system resolver), port 5353, "
        f"key k. hmac-sha512 (secret file {key}), conflict check-with-dhcid, ttl 300, "
        "refresh 600 s, records withdrawn at stop"
    )
