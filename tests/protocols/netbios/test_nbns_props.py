"""Round trip and totality of the NBNS codec and the node engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import MalformedMessage
from protocols.netbios.nbns import (
    NbnsMessage,
    decode_packet,
)
from protocols.netbios.nbns_encode import (
    encode_packet,
)
from protocols.netbios.node import NbnsIdentity, NbnsNode
from tests.helpers import goldens
from tests.protocols.netbios.strategies import messages

SETTINGS = settings(max_examples=300, deadline=None)
GOLDENS = goldens("nbns_")
IDENTITY = NbnsIdentity("SQL01-CZ1", "CORP", "127.0.0.5", bytes(range(6)), public_name="SQL01")
NODES = [NbnsNode(IDENTITY, fast_path=True), NbnsNode(IDENTITY, fast_path=False)]


def decode_or_reject(data: bytes) -> None:
    try:
        message = decode_packet(data)
    except MalformedMessage:
        return
    assert encode_packet(message)  # anything decoded can be encoded again


def engine_total(data: bytes, broadcast: bool) -> None:
    for node in NODES:
        try:
            reply = node.receive_datagram(data, broadcast=broadcast, now=0.0)
        except MalformedMessage:
            continue
        if reply is not None:
            assert reply[:2] == data[:2]
            decode_packet(reply)


@SETTINGS
@given(messages)
def test_round_trip(message: NbnsMessage) -> None:
    assert decode_packet(encode_packet(message)) == message


@SETTINGS
@given(st.binary(max_size=600))
def test_decode_total_on_random_bytes(data: bytes) -> None:
    decode_or_reject(data)


@pytest.mark.parametrize("index", range(len(GOLDENS)))
def test_decode_total_on_every_truncation(index: int) -> None:
    packet = GOLDENS[index]
    for cut in range(len(packet)):
        decode_or_reject(packet[:cut])
        engine_total(packet[:cut], broadcast=False)


@SETTINGS
@given(st.sampled_from(GOLDENS), st.data())
def test_decode_total_on_bit_flips(packet: bytes, data: st.DataObject) -> None:
    mutated = bytearray(packet)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(packet) - 1))
        mutated[index] ^= 1 << data.draw(st.integers(0, 7))
    decode_or_reject(bytes(mutated))
    engine_total(bytes(mutated), broadcast=data.draw(st.booleans()))


@SETTINGS
@given(st.sampled_from(GOLDENS), st.data())
def test_decode_total_on_maximal_length_fields(packet: bytes, data: st.DataObject) -> None:
    mutated = bytearray(packet)
    index = data.draw(st.integers(0, len(packet) - 2))
    mutated[index : index + 2] = b"\xff\xff"
    decode_or_reject(bytes(mutated))
    engine_total(bytes(mutated), broadcast=False)


@SETTINGS
@given(messages, st.booleans())
def test_engine_total_on_valid_messages(message: NbnsMessage, broadcast: bool) -> None:
    engine_total(encode_packet(message), broadcast)


@SETTINGS
@given(st.binary(max_size=200), st.booleans())
def test_engine_total_on_random_bytes(data: bytes, broadcast: bool) -> None:
    engine_total(data, broadcast)
