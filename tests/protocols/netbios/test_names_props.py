"""Properties of the first-level NetBIOS name codec."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import MalformedMessage
from protocols.netbios.names import NetbiosName, decode_netbios_name, encode_netbios_name
from tests.protocols.netbios.strategies import netbios_names

SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(netbios_names)
def test_round_trip(name: NetbiosName) -> None:
    wire = encode_netbios_name(name)
    assert decode_netbios_name(wire) == (name, len(wire))
    assert decode_netbios_name(wire, compression=True) == (name, len(wire))


@SETTINGS
@given(netbios_names)
def test_encoded_form_is_a_to_p(name: NetbiosName) -> None:
    wire = encode_netbios_name(name)
    assert wire[0] == 32
    assert all(0x41 <= b <= 0x50 for b in wire[1:33])


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 300), st.booleans())
def test_decode_is_total(data: bytes, offset: int, compression: bool) -> None:
    try:
        name, end = decode_netbios_name(data, offset, compression=compression)
    except MalformedMessage:
        return
    assert offset < end <= len(data)
    assert isinstance(name, NetbiosName)
