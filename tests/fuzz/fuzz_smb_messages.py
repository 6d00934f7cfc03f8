"""Fuzz target: the SMB1 and SMB2 request decoders, called directly on one message.

SMB1 (MS-CIFS §2.2.3, §2.2.4.52, §2.2.4.53, §2.2.4.39), SMB2 (MS-SMB2
§2.2.1.2, §2.2.3 with negotiate contexts §2.2.3.1, §2.2.5). The first byte
picks the decoder; the rest is the message, header included.

Invariant: each decoder returns its message or raises MalformedMessage; the
server's answer to a NEGOTIATE (dialect, contexts) is computed or raises
MalformedMessage; what decodes encodes back to a message that decodes the
same.
"""

from __future__ import annotations

import contextlib

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.errors import MalformedMessage
    from protocols.smb import negotiate as neg
    from protocols.smb import smb1, smb2


def seeds() -> list[bytes]:
    messages = [m[4:] for m in goldens("smb_") if m[4:5] in (b"\xfe", b"\xff")]
    return [bytes([kind]) + message for kind in range(len(CHECKS)) for message in messages]


def smb2_negotiate(message: bytes) -> None:
    request = neg.decode_negotiate_request(message)
    assert neg.decode_negotiate_request(neg.encode_negotiate_request(request)) == request
    neg.choose_dialect(request.dialects, neg.Dialect.SMB311)
    if neg.Dialect.SMB311 in request.dialects:
        neg.response_contexts(request, bytes(32))


def smb2_session_setup(message: bytes) -> None:
    request = smb2.decode_session_setup_request(message)
    again = smb2.decode_session_setup_request(smb2.encode_session_setup_request(request))
    assert again == request


def smb1_negotiate(message: bytes) -> None:
    request = smb1.decode_negotiate_request(message)
    assert smb1.decode_negotiate_request(smb1.encode_negotiate_request(request)) == request


def smb1_echo(message: bytes) -> None:
    request = smb1.decode_echo_request(message)
    assert smb1.decode_echo_request(smb1.encode_echo_request(request)) == request


CHECKS = (
    smb2_negotiate,
    smb2_session_setup,
    smb1_negotiate,
    lambda message: smb1.decode_session_setup_request(message),
    smb1_echo,
)


def one_input(data: bytes) -> None:
    if not data:
        return
    with contextlib.suppress(MalformedMessage):
        CHECKS[data[0] % len(CHECKS)](data[1:])


if __name__ == "__main__":
    runner.main(one_input, seeds())
