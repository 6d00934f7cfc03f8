"""SMB1 codecs: round trips and totality on random bytes and mutated captures."""

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import MalformedMessage
from protocols.smb import smb1
from tests.helpers import golden

SETTINGS = settings(max_examples=300, deadline=None)

u8, u16, u32, u64 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32, 64))
text = st.text(st.characters(min_codepoint=1, max_codepoint=0xD7FF), max_size=20)


def headers(command):
    return st.builds(
        smb1.Header, st.just(command), u32, u8, u16, u16, st.binary(min_size=8, max_size=8),
        u16, u16, u16, u16,
    )  # fmt: skip


@SETTINGS
@given(headers(smb1.Command.ECHO))
def test_header_round_trip(header):
    assert smb1.decode_header(smb1.encode_error_response(header)) == header


@SETTINGS
@given(
    headers(smb1.Command.NEGOTIATE),
    st.lists(st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=12), max_size=10),
)
def test_negotiate_request_round_trip(header, dialects):
    message = smb1.NegotiateRequest(header, tuple(dialects))
    assert smb1.decode_negotiate_request(smb1.encode_negotiate_request(message)) == message


@SETTINGS
@given(
    headers(smb1.Command.NEGOTIATE),
    st.booleans(),
    u64,
    st.integers(-0x8000, 0x7FFF),
    text,
    text,
    st.binary(max_size=100),
)
def test_negotiate_response_round_trip(header, extended, now, zone, domain, server, blob):
    caps = smb1.Capabilities.UNICODE | (smb1.Capabilities.EXTENDED_SECURITY if extended else 0)
    base = smb1.NegotiateResponse(header, 0, 3, 50, 1, 16644, 65536, 0, caps, now, zone)
    if extended:
        message = smb1.NegotiateResponse(
            *_fields(base)[:11], server_guid=bytes(16), security_blob=blob
        )
    else:
        message = smb1.NegotiateResponse(*_fields(base)[:11], bytes(8), domain, server)
    assert smb1.decode_negotiate_response(smb1.encode_negotiate_response(message)) == message


@SETTINGS
@given(headers(smb1.Command.SESSION_SETUP_ANDX), u16, st.binary(max_size=200), text, text, text)
def test_session_setup_response_round_trip(header, action, blob, os_name, lanman, domain):
    if max(map(ord, os_name + lanman + domain), default=0) > 0xFF:
        header = replace(header, flags2=header.flags2 | smb1.Flags2.UNICODE)
    message = smb1.SessionSetupResponse(header, action, blob, os_name, lanman, domain)
    assert (
        smb1.decode_session_setup_response(smb1.encode_session_setup_response(message)) == message
    )


@SETTINGS
@given(headers(smb1.Command.SESSION_SETUP_ANDX), u16, text, text, text)
def test_plain_session_setup_response_round_trip(header, action, os_name, lanman, domain):
    if max(map(ord, os_name + lanman + domain), default=0) > 0xFF:
        header = replace(header, flags2=header.flags2 | smb1.Flags2.UNICODE)
    message = smb1.SessionSetupResponse(header, action, b"", os_name, lanman, domain)
    encoded = smb1.encode_plain_session_setup_response(message)
    assert smb1.decode_plain_session_setup_response(encoded) == message


def _fields(message):
    return [getattr(message, name) for name in message.__slots__]


DECODERS = [
    smb1.decode_header,
    smb1.decode_negotiate_request,
    smb1.decode_negotiate_response,
    smb1.decode_session_setup_request,
    smb1.decode_session_setup_response,
    smb1.decode_plain_session_setup_response,
]


@pytest.mark.parametrize("decode", DECODERS)
@SETTINGS
@given(data=st.binary(max_size=300), command=st.sampled_from([0x72, 0x73]))
def test_decoders_total_on_random_bytes(decode, data, command):
    for message in (data, b"\xffSMB" + bytes((command,)) + data):
        with contextlib.suppress(MalformedMessage):
            decode(message)


CAPTURES = [
    "smb_impacket_multiprotocol_negotiate_req",
    "smb_smbd_smb1_ext_negotiate_resp",
    "smb_smbd_smb1_plain_negotiate_resp",
    "smb_impacket_smb1_session_setup_negotiate_req",
    "smb_smbclient_nt1_nospnego_session_setup_req",
    "smb_smbd_smb1_session_setup_challenge_resp",
]


@pytest.mark.parametrize("name", CAPTURES)
def test_decoders_total_on_mutated_captures(name):
    raw = golden(name)[4:]
    variants = [raw[:i] for i in range(len(raw))]
    variants += [raw[:i] + bytes((raw[i] ^ 0xFF,)) + raw[i + 1 :] for i in range(len(raw))]
    for variant in variants:
        for decode in DECODERS:
            with contextlib.suppress(MalformedMessage):
                decode(variant)
