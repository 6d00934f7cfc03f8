"""Hypothesis properties of the NTLMSSP codec: round trips and totality."""

from __future__ import annotations

import struct
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.auth import ntlmssp
from protocols.auth.ntlmssp import (
    AuthenticateMessage,
    AvId,
    ChallengeMessage,
    NegotiateFlags,
    NegotiateMessage,
    NtlmIdentity,
)
from protocols.errors import MalformedMessage
from tests.helpers import goldens

F = NegotiateFlags
GOLDENS = goldens("ntlm_")
DECODERS: list[tuple[Callable[[bytes], object], type]] = [
    (ntlmssp.message_type, ntlmssp.MessageType),
    (ntlmssp.decode_negotiate, NegotiateMessage),
    (ntlmssp.decode_challenge, ChallengeMessage),
    (ntlmssp.decode_authenticate, AuthenticateMessage),
    (ntlmssp.decode_av_pairs, tuple),
]

flags_st = st.integers(0, 0xFFFF_FFFF).map(NegotiateFlags)
latin1_st = st.text(st.characters(max_codepoint=0xFF), max_size=20)
unicode_st = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
version_st = st.binary(min_size=8, max_size=8)
response_st = st.sampled_from([b"", b"\0"]) | st.binary(max_size=48)


def decodes_or_rejects(data: bytes) -> None:
    """Every decoder returns its message type or raises MalformedMessage, nothing else."""
    for decode, expected in DECODERS:
        try:
            result = decode(data)
        except MalformedMessage as error:
            result = error
        assert isinstance(result, (expected, MalformedMessage))


def text_for(flags: NegotiateFlags) -> st.SearchStrategy[str]:
    return unicode_st if flags & F.NTLMSSP_NEGOTIATE_UNICODE else latin1_st


def version_for(flags: NegotiateFlags) -> st.SearchStrategy[bytes | None]:
    return version_st if flags & F.NTLMSSP_NEGOTIATE_VERSION else st.none()


@st.composite
def negotiate_messages(draw: st.DrawFn) -> NegotiateMessage:
    flags = draw(flags_st)
    return NegotiateMessage(flags, draw(latin1_st), draw(latin1_st), draw(version_for(flags)))


@st.composite
def challenge_messages(draw: st.DrawFn) -> ChallengeMessage:
    flags = draw(flags_st)
    pair = st.tuples(st.integers(1, 0xFFFF), st.binary(max_size=30))
    return ChallengeMessage(
        flags=flags,
        target_name=draw(text_for(flags)),
        server_challenge=draw(st.binary(min_size=8, max_size=8)),
        target_info=tuple(draw(st.lists(pair, max_size=6))),
        version=draw(version_for(flags)),
    )


def expected_anonymous(user: str, lm: bytes, nt: bytes) -> bool:
    return user == "" and (nt == b"" or lm == b"\0")


@st.composite
def authenticate_messages(draw: st.DrawFn) -> AuthenticateMessage:
    flags = draw(flags_st)
    text = text_for(flags)
    user = draw(st.sampled_from([""]) | text)
    lm, nt = draw(response_st), draw(response_st)
    return AuthenticateMessage(
        flags=flags,
        domain=draw(text),
        user=user,
        workstation=draw(text),
        lm_response=lm,
        nt_response=nt,
        is_anonymous=expected_anonymous(user, lm, nt),
    )


name_st = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
identities = st.builds(
    NtlmIdentity,
    nb_computer_name=name_st,
    nb_domain_name=name_st,
    dns_computer_name=name_st,
    dns_domain_name=name_st,
    dns_tree_name=name_st,
    version=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF)),
    target_type_domain=st.booleans(),
)

SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(negotiate_messages())
def test_negotiate_round_trip(message: NegotiateMessage) -> None:
    assert ntlmssp.decode_negotiate(ntlmssp.encode_negotiate(message)) == message


@SETTINGS
@given(challenge_messages())
def test_challenge_message_round_trip(message: ChallengeMessage) -> None:
    assert ntlmssp.decode_challenge(ntlmssp.encode_challenge_message(message)) == message


@SETTINGS
@given(authenticate_messages())
def test_authenticate_round_trip(message: AuthenticateMessage) -> None:
    assert ntlmssp.decode_authenticate(ntlmssp.encode_authenticate(message)) == message


@SETTINGS
@given(identities, flags_st, st.integers(0, 2**64 - 1), st.binary(min_size=8, max_size=8))
def test_encode_challenge_carries_identity(
    identity: NtlmIdentity, client: NegotiateFlags, timestamp: int, challenge: bytes
) -> None:
    token = ntlmssp.encode_challenge(
        identity, client, server_challenge=challenge, timestamp=timestamp
    )
    message = ntlmssp.decode_challenge(token)
    assert message.flags == ntlmssp.challenge_flags(client, identity)
    assert message.server_challenge == challenge
    pairs = dict(message.target_info)
    assert pairs[AvId.NB_COMPUTER_NAME] == identity.nb_computer_name.encode("utf-16-le")
    assert pairs[AvId.DNS_COMPUTER_NAME] == identity.dns_computer_name.encode("utf-16-le")
    assert pairs[AvId.TIMESTAMP] == timestamp.to_bytes(8, "little")
    assert [av_id for av_id, _ in message.target_info] == [2, 1, 4, 3, 5, 7]
    if message.flags & F.NTLMSSP_NEGOTIATE_UNICODE:
        assert message.target_name == identity.nb_domain_name
    assert message.version == ntlmssp.encode_version(*identity.version)


@SETTINGS
@given(st.binary(max_size=200))
def test_decoders_total_on_random_bytes(data: bytes) -> None:
    decodes_or_rejects(data)


@SETTINGS
@given(st.integers(0, 4), st.binary(max_size=200))
def test_decoders_total_after_signature(kind: int, rest: bytes) -> None:
    decodes_or_rejects(ntlmssp.SIGNATURE + struct.pack("<I", kind) + rest)


def test_decoders_total_on_every_truncation() -> None:
    for golden in GOLDENS:
        for end in range(len(golden)):
            decodes_or_rejects(golden[:end])


@SETTINGS
@given(st.sampled_from(GOLDENS), st.data())
def test_decoders_total_on_bit_flips(golden: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(golden) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(golden)
    flipped[index] ^= 1 << bit
    decodes_or_rejects(bytes(flipped))


@SETTINGS
@given(
    st.sampled_from(GOLDENS),
    st.integers(12, 63),
    st.sampled_from(["<H", "<I"]),
    st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0xFFFF_FFFF]),
)
def test_decoders_total_on_extreme_header_values(
    golden: bytes, offset: int, fmt: str, value: int
) -> None:
    patched = bytearray(golden)
    size = struct.calcsize(fmt)
    if offset + size > len(patched):
        offset = len(patched) - size
    struct.pack_into(fmt, patched, offset, value & (0xFFFF if fmt == "<H" else 0xFFFF_FFFF))
    decodes_or_rejects(bytes(patched))
