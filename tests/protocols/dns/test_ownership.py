"""protocols.dns.ownership: RFC 4701 DHCID RDATA and the record sets a node owns."""

from __future__ import annotations

import base64
import hashlib
import ipaddress

import pytest

from protocols.dns.ownership import (
    IDENTIFIER_CLIENT_ID,
    NodeNames,
    canonical_wire_name,
    covering_zone,
    default_reverse_zone,
    encode_dhcid,
    mac_dhcid,
    plan_record_sets,
)


def test_canonical_wire_name_is_lower_case_uncompressed_with_root():
    assert canonical_wire_name("Client.Example.COM.") == b"\x06client\x07example\x03com\x00"
    assert canonical_wire_name("client.example.com") == b"\x06client\x07example\x03com\x00"
    assert canonical_wire_name("") == b"\x00"


@pytest.mark.parametrize("name", ["a..b", "x" * 64 + ".example", ".".join(["a" * 63] * 4)])
def test_canonical_wire_name_rejects_bad_names(name):
    with pytest.raises(ValueError):
        canonical_wire_name(name)


def test_dhcid_of_rfc4701_example_3_ethernet_mac():
    # RFC 4701 §3.6.3: 01:02:03:04:05:06 (htype 1) for client.example.com, type 0x0000.
    rdata = mac_dhcid(bytes.fromhex("010203040506"), "client.example.com")
    assert base64.b64encode(rdata) == b"AAABxLmlskllE0MVjd57zHcWmEH3pCQ6VytcKD//7es/deY="


def test_dhcid_of_rfc4701_example_2_client_identifier():
    # RFC 4701 §3.6.2: client-identifier 01:07:08:09:0a:0b:0c for chi.example.com, type 0x0001.
    client_id = bytes.fromhex("010708090a0b0c")
    rdata = encode_dhcid(IDENTIFIER_CLIENT_ID, client_id, "chi.example.com")
    assert base64.b64encode(rdata) == b"AAEBOSD+XR3Os/0LozeXVqcNc7FwCfQdWL3b/NaiUDlW2No="


def test_dhcid_bytes_by_hand():
    mac = bytes.fromhex("02005e100011")
    wire = b"\x09sql01-cz1\x04corp\x07example\x00"
    expected = b"\x00\x00\x01" + hashlib.sha256(b"\x01" + mac + wire).digest()
    assert mac_dhcid(mac, "SQL01-CZ1.corp.example.") == expected
    assert len(expected) == 35


def test_dhcid_rejects_a_short_mac_and_a_wide_type():
    with pytest.raises(ValueError):
        mac_dhcid(b"\x02\x00", "a.example")
    with pytest.raises(ValueError):
        encode_dhcid(0x10000, b"", "a.example")


def test_default_reverse_zones_are_the_slash_24_and_slash_64():
    assert default_reverse_zone(ipaddress.ip_address("192.0.2.17")) == "2.0.192.in-addr.arpa"
    assert (
        default_reverse_zone(ipaddress.ip_address("2001:db8:1:2::11"))
        == "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    )


def test_covering_zone_is_the_longest():
    zones = ["127.in-addr.arpa", "0.0.127.in-addr.arpa", "corp.example"]
    assert covering_zone("11.0.0.127.in-addr.arpa", zones) == "0.0.127.in-addr.arpa"
    assert covering_zone("11.1.0.127.in-addr.arpa", zones) == "127.in-addr.arpa"
    assert covering_zone("11.0.0.10.in-addr.arpa", zones) is None


def test_plan_places_forward_and_reverse_sets():
    node = NodeNames(
        "SQL01-CZ1",
        "sql01-cz1.corp.example",
        (ipaddress.ip_address("127.0.0.11"), ipaddress.ip_address("fd00::11")),
        b"\x00\x00\x01" + bytes(32),
    )
    sets = plan_record_sets("corp.example", ["0.0.127.in-addr.arpa"], [node], 120)
    assert [(s.zone, s.owner, s.types, s.records) for s in sets] == [
        (
            "corp.example",
            "sql01-cz1.corp.example",
            ("A", "AAAA"),
            (("A", "127.0.0.11"), ("AAAA", "fd00::11")),
        ),
        (
            "0.0.127.in-addr.arpa",
            "11.0.0.127.in-addr.arpa",
            ("PTR",),
            (("PTR", "sql01-cz1.corp.example."),),
        ),
    ]  # no reverse zone holds fd00::11: no PTR for it
    assert {s.ttl for s in sets} == {120} and {s.dhcid for s in sets} == {node.dhcid}
