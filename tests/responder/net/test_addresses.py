"""The address watch (rtnetlink) and the link-layer broadcast sender."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, UDP

from responder.net.addresses import (
    LOOPBACK_IFINDEX,
    RTM_DELADDR,
    RTM_NEWADDR,
    AddressChange,
    AddressInfo,
    AddressWatch,
    Presence,
    parse_messages,
    present_now,
    read_table,
)
from responder.net.linksend import udp_packet
from tests.helpers import run_on

ADDRESS = "198.18.0.41"


def ifaddr_message(kind: int, address: str, *, brd: str | None = None, flags: int = 0) -> bytes:
    """One RTM_NEWADDR/RTM_DELADDR as the kernel builds it (IFA_ADDRESS, IFA_LOCAL, ...)."""
    raw = socket.inet_aton(address)
    attrs = struct.pack("=HH", 8, 1) + raw + struct.pack("=HH", 8, 2) + raw
    if brd is not None:
        attrs += struct.pack("=HH", 8, 4) + socket.inet_aton(brd)
    attrs += struct.pack("=HHI", 8, 8, flags)
    body = struct.pack("=BBBBI", socket.AF_INET, 24, 0, 0, 7) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_new_and_deleted_addresses_are_parsed():
    data = ifaddr_message(RTM_NEWADDR, ADDRESS, brd="198.18.0.255") + ifaddr_message(
        RTM_DELADDR, "198.18.0.42", flags=0x40
    )
    assert list(parse_messages(data)) == [
        (RTM_NEWADDR, AddressInfo(ADDRESS, 24, 7, "198.18.0.255", True)),
        (RTM_DELADDR, AddressInfo("198.18.0.42", 24, 7, None, False)),
    ]


def test_reject_message_length_past_the_data():
    data = ifaddr_message(RTM_NEWADDR, ADDRESS)
    with pytest.raises(ValueError, match="out of bounds"):
        list(parse_messages(data[:-4]))


def test_present_means_assigned_and_usable_or_in_a_loopback_prefix():
    table = {
        ("127.0.0.1", 1): AddressInfo("127.0.0.1", 8, 1, None, True),
        (ADDRESS, 7): AddressInfo(ADDRESS, 24, 7, "198.18.0.255", True),
        ("fd00::1", 7): AddressInfo("fd00::1", 64, 7, None, False),  # tentative (DAD)
    }
    presence = Presence.of(table)
    assert "127.0.0.12" in presence and ADDRESS in presence
    assert "198.18.0.42" not in presence  # same subnet, not ours
    assert "fd00::1" not in presence


def test_read_table_sees_the_loopback_address():
    assert any(info.address == "127.0.0.1" for info in read_table().values())
    assert present_now(["127.0.0.11", ADDRESS]) == {"127.0.0.11": True, ADDRESS: False}


def test_udp_packet_checksums_are_valid():
    packet = udp_packet((ADDRESS, 137), ("198.18.0.255", 137), b"\x12\x34payload")
    parsed = IP(packet)
    assert parsed.src == ADDRESS and parsed.dst == "198.18.0.255"
    assert bytes(parsed[UDP].payload) == b"\x12\x34payload"
    ip_sum, udp_sum = parsed.chksum, parsed[UDP].chksum
    del parsed.chksum, parsed[UDP].chksum
    rebuilt = IP(bytes(parsed))
    assert (rebuilt.chksum, rebuilt[UDP].chksum) == (ip_sum, udp_sum)


@pytest.fixture
def veth() -> Iterator[str]:
    """A veth pair in the suite's namespace, for addresses to come and go on."""
    name = f"czw{os.getpid() % 10000}{time.monotonic_ns() % 1000}"
    subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True)


async def ip(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("ip", *args)
    assert await proc.wait() == 0


def test_watch_reports_an_address_coming_and_going(loop_kind, veth):
    async def scenario() -> None:
        watch = AddressWatch(asyncio.get_running_loop())
        watch.open()
        changes: asyncio.Queue[AddressChange] = asyncio.Queue()
        watch.subscribe(changes.put_nowait)
        try:
            assert not watch.present(ADDRESS)
            await ip("addr", "add", f"{ADDRESS}/24", "brd", "+", "dev", veth)
            came = await changes.get()
            assert (came.address, came.present) == (ADDRESS, True)
            assert came.info.broadcast == "198.18.0.255" and watch.present(ADDRESS)
            await ip("addr", "del", f"{ADDRESS}/24", "dev", veth)
            went = await changes.get()
            assert (went.address, went.present) == (ADDRESS, False)
            assert not watch.present(ADDRESS)
            where = watch.where(ADDRESS)
            assert where is not None and where.ifindex == socket.if_nametoindex(veth)
        finally:
            watch.close()

    run_on(loop_kind, scenario)


def test_presence_is_an_index_of_the_table():
    table = {
        ("127.0.0.1", LOOPBACK_IFINDEX): AddressInfo("127.0.0.1", 8, LOOPBACK_IFINDEX, None, True),
        ("198.18.0.1", 2): AddressInfo("198.18.0.1", 24, 2, "198.18.0.255", True),
        ("fd00::5", 2): AddressInfo("fd00::5", 64, 2, None, False),  # DAD still running
    }
    presence = Presence.of(table)
    assert presence.usable == {"127.0.0.1", "198.18.0.1"}
    assert "198.18.0.1" in presence and "127.3.2.1" in presence  # exact, and a loopback prefix
    assert "198.18.0.2" not in presence and "fd00::5" not in presence
    assert "::1" not in presence  # an IPv6 address is never in the IPv4 loopback prefix
    assert "127.3.2.1" not in Presence.of({k: v for k, v in table.items() if k[1] != 1})
