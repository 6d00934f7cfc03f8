"""Subnet broadcast addresses from the interface table."""

from __future__ import annotations

import ipaddress
import json

import pytest

from responder.net.interfaces import parse_ip_addr_json, subnet_broadcasts

A = ipaddress.IPv4Address


def link(flags: list[str], *addrs: dict[str, object]) -> dict[str, object]:
    return {"ifname": "x", "flags": flags, "addr_info": list(addrs)}


def test_broadcast_field_prefix_fallback_and_exclusions():
    text = json.dumps(
        [
            link(["LOOPBACK", "UP"], {"family": "inet", "local": "127.0.0.11", "prefixlen": 8}),
            link(
                ["BROADCAST", "UP"],
                {
                    "family": "inet",
                    "local": "198.18.0.11",
                    "prefixlen": 24,
                    "broadcast": "198.18.0.255",
                },
                {"family": "inet", "local": "10.1.2.3", "prefixlen": 20},
                {"family": "inet", "local": "10.9.9.9", "prefixlen": 32},
                {"family": "inet", "local": "127.0.0.50", "prefixlen": 8},
            ),
            link(["POINTOPOINT", "UP"], {"family": "inet", "local": "10.7.0.1", "prefixlen": 24}),
        ]
    )
    assert parse_ip_addr_json(text) == {
        A("198.18.0.11"): A("198.18.0.255"),
        A("10.1.2.3"): A("10.1.15.255"),
    }


def test_not_a_list_is_rejected():
    with pytest.raises(ValueError, match="JSON list"):
        parse_ip_addr_json("{}")


def test_this_namespace_has_only_loopback():
    assert subnet_broadcasts() == {}
