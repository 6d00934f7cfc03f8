"""SMB2 codecs: round trips and totality on random bytes and mutated captures."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import MalformedMessage
from protocols.smb import negotiate as neg
from protocols.smb import smb2
from protocols.smb.windows import windows_server
from tests.helpers import golden

SETTINGS = settings(max_examples=300, deadline=None)

u8, u16, u32, u64 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32, 64))
headers = st.builds(
    smb2.Header,
    u16,
    u32,
    u16,
    u16,
    u32,
    u32,
    u64,
    u32,
    u32,
    u64,
    st.binary(min_size=16, max_size=16),
)
contexts = st.lists(
    st.builds(neg.NegotiateContext, u16, st.binary(max_size=40)), min_size=1, max_size=5
).map(tuple)
dialect_lists = st.lists(u16, min_size=1, max_size=10).map(tuple)


@SETTINGS
@given(headers)
def test_header_round_trip(header):
    assert smb2.decode_header(smb2.encode_header(header)) == header


@SETTINGS
@given(headers, u8, u8, u32, u32, u64, st.binary(max_size=300))
def test_session_setup_request_round_trip(header, flags, mode, caps, channel, prev, blob):
    header = smb2.Header(smb2.Command.SESSION_SETUP, *_rest(header))
    message = smb2.SessionSetupRequest(header, flags, mode, caps, channel, prev, blob)
    assert smb2.decode_session_setup_request(smb2.encode_session_setup_request(message)) == message


@SETTINGS
@given(headers, st.integers(0, 7), st.binary(max_size=300))
def test_session_setup_response_round_trip(header, flags, blob):
    header = smb2.Header(smb2.Command.SESSION_SETUP, *_rest(header))
    message = smb2.SessionSetupResponse(header, smb2.SessionFlags(flags), blob)
    assert (
        smb2.decode_session_setup_response(smb2.encode_session_setup_response(message)) == message
    )


@SETTINGS
@given(headers, dialect_lists, u16, u32, st.binary(min_size=16, max_size=16), contexts, u64)
def test_negotiate_request_round_trip(header, dialects, mode, caps, guid, ctxs, start):
    header = smb2.Header(smb2.Command.NEGOTIATE, *_rest(header))
    has_311 = neg.Dialect.SMB311 in dialects
    message = neg.NegotiateRequest(
        header, dialects, mode, caps, guid, ctxs if has_311 else (), 0 if has_311 else start
    )
    assert neg.decode_negotiate_request(neg.encode_negotiate_request(message)) == message


@SETTINGS
@given(headers, st.sampled_from(list(neg.Dialect)), st.binary(max_size=200), contexts, u64, u64)
def test_negotiate_response_round_trip(header, dialect, blob, ctxs, now, boot):
    message = neg.NegotiateResponse(
        header, smb2.SecurityMode.SIGNING_ENABLED, dialect, bytes(range(16)),
        windows_server(20348).capabilities(dialect), 1, 2, 3, now, boot, blob,
        ctxs if dialect == neg.Dialect.SMB311 else (),
    )  # fmt: skip
    assert neg.decode_negotiate_response(neg.encode_negotiate_response(message)) == message


def _rest(header):
    return (
        header.status, header.credit_charge, header.credits, header.flags, header.next_command,
        header.message_id, header.process_id, header.tree_id, header.session_id, header.signature,
    )  # fmt: skip


DECODERS = [
    smb2.decode_header,
    smb2.decode_session_setup_request,
    smb2.decode_session_setup_response,
    neg.decode_negotiate_request,
    neg.decode_negotiate_response,
]


def _request_contexts(message):
    request = neg.decode_negotiate_request(message)
    if neg.Dialect.SMB311 in request.dialects:
        neg.response_contexts(request, bytes(32))


@pytest.mark.parametrize("decode", [*DECODERS, _request_contexts])
@SETTINGS
@given(data=st.binary(max_size=400))
def test_decoders_total_on_random_bytes(decode, data):
    for message in (data, b"\xfeSMB@\x00" + data):
        with contextlib.suppress(MalformedMessage):
            decode(message)


CAPTURES = [
    "smb_smbclient_smb2_negotiate_req",
    "smb_nmap_smb2_negotiate_req",
    "smb_smbd_smb2_negotiate_resp",
    "smb_smbclient_smb2_session_setup_negotiate_req",
    "smb_smbd_smb2_session_setup_challenge_resp",
]


@pytest.mark.parametrize("name", CAPTURES)
def test_decoders_total_on_mutated_captures(name):
    raw = golden(name)[4:]
    variants = [raw[:i] for i in range(len(raw))]
    variants += [raw[:i] + bytes((raw[i] ^ 0xFF,)) + raw[i + 1 :] for i in range(len(raw))]
    variants += [raw[:i] + b"\xff\xff\xff\xff" + raw[i + 4 :] for i in range(len(raw) - 3)]
    for variant in variants:
        for decode in [*DECODERS, _request_contexts]:
            with contextlib.suppress(MalformedMessage):
                decode(variant)
