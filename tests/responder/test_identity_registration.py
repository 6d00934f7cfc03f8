"""responder.identity: each node's DHCID and the record sets ``[registration.dns]`` registers."""

from __future__ import annotations

import base64

from protocols.dns.ownership import mac_dhcid
from responder.config import Config, load_config
from responder.identity import derived_mac, dns_registrations, node_identities
from tests.helpers import BASE_CONFIG

SECRET = base64.b64encode(b"s" * 32).decode()
REGISTRATION = f'[registration.dns]\ntsig_name = "k"\ntsig_secret = "{SECRET}"\n'


def config(write_config, text: str = BASE_CONFIG + REGISTRATION) -> Config:
    return load_config(str(write_config(text)))


def test_dhcid_is_the_rfc4701_digest_of_the_mac_and_fqdn(write_config):
    first, second = node_identities(config(write_config))
    assert first.dhcid == mac_dhcid(derived_mac("SQL01-CZ1"), "sql01-cz1.corp.example")
    assert first.dhcid != second.dhcid


def test_dhcid_is_stable_across_loads_and_follows_a_configured_mac(write_config):
    again = node_identities(config(write_config))
    assert [n.dhcid for n in again] == [n.dhcid for n in node_identities(config(write_config))]
    text = BASE_CONFIG.replace(
        'management_ip = "127.0.0.11"', 'management_ip = "127.0.0.11"\nmac = "02:00:5e:10:00:11"'
    )
    (node, _) = node_identities(config(write_config, text))
    assert node.dhcid == mac_dhcid(bytes.fromhex("02005e100011"), "sql01-cz1.corp.example")


def test_registrations_per_zone(write_config):
    sets = dns_registrations(config(write_config))
    assert [(s.zone, s.owner, s.records) for s in sets] == [
        ("corp.example", "sql01-cz1.corp.example", (("A", "127.0.0.11"),)),
        ("0.0.127.in-addr.arpa", "11.0.0.127.in-addr.arpa", (("PTR", "sql01-cz1.corp.example."),)),
        ("corp.example", "sql01-cz2.corp.example", (("A", "127.0.0.12"),)),
        ("0.0.127.in-addr.arpa", "12.0.0.127.in-addr.arpa", (("PTR", "sql01-cz2.corp.example."),)),
    ]
    first, second = node_identities(config(write_config))
    assert [s.dhcid for s in sets] == [first.dhcid, first.dhcid, second.dhcid, second.dhcid]


def test_no_registrations_without_the_section(write_config):
    assert dns_registrations(config(write_config, BASE_CONFIG)) == ()


def test_an_empty_reverse_zone_list_registers_no_ptr(write_config):
    sets = dns_registrations(
        config(write_config, BASE_CONFIG + REGISTRATION + "reverse_zones = []\n")
    )
    assert {s.zone for s in sets} == {"corp.example"}
