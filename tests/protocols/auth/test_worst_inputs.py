"""The costliest SPNEGO, DER and NTLMSSP inputs we know, each within its budget (issue 11).

A security blob reaches these decoders from an SMB2 SESSION_SETUP
(SecurityBufferLength is 16 bits) or an SMB1 one, so every input is at most
64 KiB: the longest lists the grammar has (mechTypes, RFC 4178 §4.2.1;
AV_PAIRs, MS-NLMP §2.2.2.1), the longest OBJECT IDENTIFIER (X.690 §8.19),
the deepest nesting (X.690 §8.1), the longest fields (MS-NLMP §2.2.1). Work
is counted in Python lines (tests.helpers.count_lines);
``python -m benchmarks.worst_inputs`` times the same calls.
"""

from __future__ import annotations

import struct

import pytest

from protocols.auth import _der, ntlmssp, spnego
from protocols.auth.ntlmssp import NegotiateFlags
from protocols.errors import MalformedMessage, Unsupported
from tests.helpers import WorstInput, check_worst

MAX_BLOB = 65_535


def nested(levels: int) -> bytes:
    """``levels`` constructed [1] elements, each holding the next (long length forms)."""
    blob = b""
    for _ in range(levels):
        blob = b"\xa1\x83" + len(blob).to_bytes(3, "big") + blob
        if len(blob) + 5 > MAX_BLOB:
            break
    return blob


def many_mech_types(count: int) -> bytes:
    return spnego.encode_neg_token_init(("1.2",) * count, b"NTLMSSP\0")


def av_pairs(count: int, value: bytes = b"") -> bytes:
    pair = struct.pack("<HH", ntlmssp.AvId.NB_COMPUTER_NAME, len(value)) + value
    return pair * count + b"\x00\x00\x00\x00"


def challenge_with(info: bytes) -> bytes:
    """A CHALLENGE whose TargetInfo field is ``info`` (TargetName empty)."""
    head = ntlmssp.SIGNATURE + struct.pack("<I", 2) + struct.pack("<HHI", 0, 0, 56)
    head += struct.pack("<I", 0) + bytes(16) + struct.pack("<HHI", len(info), len(info), 56)
    return head + bytes(8) + info


def longest_authenticate() -> bytes:
    """An AUTHENTICATE of five fields sharing 64 KiB, the names in UTF-16."""
    text = "é" * 6_500
    return ntlmssp.encode_authenticate(
        ntlmssp.AuthenticateMessage(
            flags=NegotiateFlags.NTLMSSP_NEGOTIATE_UNICODE,
            domain=text,
            user=text,
            workstation=text,
            lm_response=bytes(13_000),
            nt_response=bytes(13_000),
            is_anonymous=False,
        )
    )


def _cases() -> list[WorstInput]:
    def case(decoder, name, data, call, expect=None):
        return WorstInput(decoder, name, len(data), lambda: call(data), expect)

    most_pairs = (0xFFFF - 4) // 4
    token = spnego.decode_client_token
    return [
        case(
            "_der.decode_oid",
            "65,000 one-octet arcs",
            b"\x01" * 65_000,
            _der.decode_oid,
            Unsupported,
        ),
        case(
            "spnego.decode_client_token",
            "21,000 mechTypes",
            many_mech_types(21_000),
            token,
            Unsupported,
        ),
        case(
            "spnego.decode_client_token",
            "13,000 nested [1] elements",
            nested(13_000),
            token,
            MalformedMessage,
        ),
        case(
            "spnego.decode_client_token",
            f"{spnego.MAX_MECH_TYPES} mechTypes",
            many_mech_types(spnego.MAX_MECH_TYPES),
            token,
        ),
        case(
            "ntlmssp.decode_av_pairs",
            f"{most_pairs:,} empty AV_PAIRs",
            av_pairs(most_pairs),
            ntlmssp.decode_av_pairs,
            Unsupported,
        ),
        case(
            "ntlmssp.decode_av_pairs",
            "one 65,535-byte AV_PAIR",
            av_pairs(1, bytes(0xFFFF)),
            ntlmssp.decode_av_pairs,
        ),
        case(
            "ntlmssp.decode_challenge",
            f"{most_pairs:,} AV_PAIRs",
            challenge_with(av_pairs(most_pairs)),
            ntlmssp.decode_challenge,
            Unsupported,
        ),
        case(
            "ntlmssp.decode_authenticate",
            "five fields sharing 64 KiB",
            longest_authenticate(),
            ntlmssp.decode_authenticate,
        ),
    ]


WORST = _cases()


@pytest.mark.parametrize("case", WORST, ids=lambda case: case.id)
def test_worst_input_is_bounded(case):
    check_worst(case)


def test_mech_types_up_to_the_budget_decode():
    init = spnego.decode_client_token(many_mech_types(spnego.MAX_MECH_TYPES))
    assert isinstance(init, spnego.NegTokenInit) and len(init.mech_types) == spnego.MAX_MECH_TYPES
    with pytest.raises(Unsupported, match="mechTypes"):
        spnego.decode_client_token(many_mech_types(spnego.MAX_MECH_TYPES + 1))


def test_av_pairs_up_to_the_budget_decode():
    assert len(ntlmssp.decode_av_pairs(av_pairs(ntlmssp.MAX_AV_PAIRS))) == ntlmssp.MAX_AV_PAIRS
    with pytest.raises(Unsupported, match="AV_PAIRs"):
        ntlmssp.decode_av_pairs(av_pairs(ntlmssp.MAX_AV_PAIRS + 1))


def test_oid_up_to_the_budget_decodes():
    assert _der.decode_oid(b"\x2a" + b"\x01" * (_der.MAX_OID_OCTETS - 1)).startswith("1.2.1.1")
    with pytest.raises(Unsupported, match="OID of 65 octets"):
        _der.decode_oid(b"\x2a" + b"\x01" * _der.MAX_OID_OCTETS)
