"""The costliest SMB inputs we know, each answered within its budget of work (issue 11).

A session message is at most 64 KiB here (``max_message_size``), so the worst
inputs are: the smallest frames back to back (RFC 1002 §4.3.7 keep-alives,
MS-SMB2 §2.2.28 ECHOs), the longest lists a message can hold (SMB1 dialects,
MS-CIFS §2.2.4.52.1; SMB2 dialects, negotiate contexts and their algorithm
lists, MS-SMB2 §2.2.3.1), the longest strings (SMB1 UTF-16 strings with no
terminator, MS-CIFS §2.2.4.53.1) and a security blob of the costliest kind.
Work is counted in Python lines (tests.helpers.count_lines);
``python -m benchmarks.worst_inputs`` times the same calls.
"""

from __future__ import annotations

import struct

import pytest

from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.smb import negotiate as neg
from protocols.smb import smb1, smb2
from protocols.smb.session import MAX_BATCH
from tests.helpers import WorstInput, check_worst, golden
from tests.protocols.auth.test_worst_inputs import many_mech_types
from tests.protocols.smb.smb_helpers import new_session

SEGMENT = 65_536
MAX_MESSAGE = 65_536  # SmbSession's default max_message_size


def direct(message: bytes) -> bytes:
    return nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, message, direct=True)


def keep_alives() -> bytes:
    return nbss.encode_keep_alive() * (SEGMENT // 4)


def smb2_echo(message_id: int) -> bytes:
    header = smb2.Header(command=smb2.Command.ECHO, credits=1, message_id=message_id)
    return direct(smb2.encode_header(header) + b"\x04\x00\x00\x00")


def negotiate_then_echoes() -> bytes:
    """An SMB2 NEGOTIATE, then as many ECHOs as fill the 64 KiB segment."""
    first = golden("smb_smbclient_smb2_negotiate_req")
    echo = smb2_echo(1)
    return first + b"".join(smb2_echo(i + 1) for i in range((SEGMENT - len(first)) // len(echo)))


def smb1_header(command: int, flags2: int = 0xC807) -> bytes:
    return (
        b"\xffSMB" + bytes([command]) + bytes(4) + b"\x18" + struct.pack("<H", flags2) + bytes(20)
    )


def smb1_negotiate(dialects: int, length: int) -> bytes:
    data = (b"\x02" + b"D" * length + b"\x00") * dialects
    return smb1_header(0x72) + b"\x00" + struct.pack("<H", len(data)) + data


def smb1_setup_unterminated() -> bytes:
    """Extended SESSION_SETUP_ANDX whose NativeOS is 64 KiB of UTF-16 with no terminator."""
    words = struct.pack("<BBHHHHIHII", 0xFF, 0, 0, 0xFFFF, 2, 1, 0, 0, 0, 0)
    room = MAX_MESSAGE - 32 - 1 - len(words) - 2
    data = b"\x01\x01" * (room // 2)
    return smb1_header(0x73) + bytes([12]) + words + struct.pack("<H", len(data)) + data


def smb2_negotiate(contexts: tuple[neg.NegotiateContext, ...], dialects: int = 1) -> bytes:
    offered = (0x0202,) * (dialects - 1) + (neg.Dialect.SMB311,)
    request = neg.NegotiateRequest(
        header=smb2.Header(command=smb2.Command.NEGOTIATE),
        dialects=offered,
        security_mode=1,
        capabilities=0,
        client_guid=bytes(16),
        contexts=contexts,
    )
    return neg.encode_negotiate_request(request)


PREAUTH = neg.NegotiateContext(1, struct.pack("<HH", 1, 32) + b"\x01\x00" + bytes(32))


def most_ciphers() -> bytes:
    room = (MAX_MESSAGE - len(smb2_negotiate((PREAUTH,))) - 16) // 2
    ciphers = struct.pack("<H", room) + b"\x05\x00" * room  # none of them known
    return smb2_negotiate((PREAUTH, neg.NegotiateContext(2, ciphers)))


def most_contexts() -> bytes:
    filler = neg.NegotiateContext(0x0100, bytes(1_900))
    return smb2_negotiate((PREAUTH,) + (filler,) * (neg.MAX_CONTEXTS - 1), neg.MAX_DIALECTS)


def answer_contexts(message: bytes) -> object:
    return neg.response_contexts(neg.decode_negotiate_request(message), bytes(32))


def session_setup(blob: bytes) -> bytes:
    request = smb2.SessionSetupRequest(
        smb2.Header(command=smb2.Command.SESSION_SETUP, message_id=1), 0, 1, 0, 0, 0, blob
    )
    return direct(smb2.encode_session_setup_request(request))


def on_139(data: bytes) -> object:
    return new_session(netbios=True).receive_data(data)


def on_445(data: bytes) -> object:
    return new_session().receive_data(data)


def _cases() -> list[WorstInput]:
    def case(decoder, name, data, call, expect=None):
        return WorstInput(decoder, name, len(data), lambda: call(data), expect)

    echoes = negotiate_then_echoes()
    count = (len(echoes) - len(golden("smb_smbclient_smb2_negotiate_req"))) // 72
    setup = golden("smb_smbclient_smb2_negotiate_req") + session_setup(many_mech_types(21_000))
    ciphers = most_ciphers()
    return [
        case("smb.SmbSession", "16,384 keep-alives in one segment (139)", keep_alives(), on_139),
        case("smb.SmbSession", f"NEGOTIATE then {count} ECHOs in one segment", echoes, on_445),
        case("smb.SmbSession", "SESSION_SETUP of 21,000 mechTypes", setup, on_445),
        case(
            "smb1.decode_negotiate_request",
            "64 dialects of 1,000 bytes",
            smb1_negotiate(64, 1_000),
            smb1.decode_negotiate_request,
        ),
        case(
            "smb1.decode_negotiate_request",
            "32,000 empty dialects",
            smb1_negotiate(32_000, 0),
            smb1.decode_negotiate_request,
            MalformedMessage,
        ),
        case(
            "smb1.decode_session_setup_request",
            "64 KiB of unterminated UTF-16",
            smb1_setup_unterminated(),
            smb1.decode_session_setup_request,
        ),
        case("smb2.negotiate", "a context of 32,685 ciphers", ciphers, answer_contexts),
        case(
            "smb2.negotiate",
            "64 dialects, 32 contexts of 1,900 bytes",
            most_contexts(),
            answer_contexts,
        ),
    ]


WORST = _cases()


@pytest.mark.parametrize("case", WORST, ids=lambda case: case.id)
def test_worst_input_is_bounded(case):
    check_worst(case)


def test_a_segment_of_echoes_is_answered_in_batches():
    session = new_session()
    replies = [session.receive_data(negotiate_then_echoes())]
    while session.pending:
        replies.append(session.receive_data(b""))
    echoes = (len(negotiate_then_echoes()) - len(golden("smb_smbclient_smb2_negotiate_req"))) // 72
    assert len(replies) == -(-(echoes + 1) // MAX_BATCH)
    assert b"".join(replies).count(b"\xfeSMB") == echoes + 1
    assert not session.closed


def test_the_cipher_list_is_searched_not_walked():
    [_preauth, encryption] = answer_contexts(most_ciphers())
    assert encryption.data == b"\x01\x00\x00\x00"  # no common cipher: NONE
