"""Fuzz target: SPNEGO (RFC 4178 §4.2) and NTLMSSP (MS-NLMP §2.2.1) tokens, decoded directly.

The first byte picks the decoder: the SPNEGO client token, or one of the
NTLMSSP messages; the rest is the token.

Invariant: each decoder returns its message or raises MalformedMessage; a
NegTokenInit or NegTokenResp that decodes encodes back to a token that
decodes the same; an AV_PAIR list that decodes encodes back to its bytes.
"""

from __future__ import annotations

import contextlib

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols.auth import ntlmssp, spnego
    from protocols.errors import MalformedMessage


def seeds() -> list[bytes]:
    return [
        bytes([kind]) + token
        for kind in range(4)
        for token in goldens("spnego_") + goldens("ntlm_")
    ]


def check_spnego(token: bytes) -> None:
    decoded = spnego.decode_client_token(token)
    if isinstance(decoded, spnego.NegTokenInit):
        again = spnego.encode_neg_token_init(decoded.mech_types, decoded.mech_token)
    elif isinstance(decoded, spnego.NegTokenResp):
        again = spnego.encode_neg_token_resp(
            decoded.neg_state,
            supported_mech=decoded.supported_mech,
            response_token=decoded.response_token,
            mech_list_mic=decoded.mech_list_mic,
        )
    else:
        return
    assert spnego.decode_client_token(again) == decoded


def check_challenge(token: bytes) -> None:
    message = ntlmssp.decode_challenge(token)
    pairs = ntlmssp.encode_av_pairs(message.target_info)
    assert ntlmssp.decode_av_pairs(pairs) == message.target_info


CHECKS = (
    check_spnego,
    lambda token: ntlmssp.decode_negotiate(token),
    check_challenge,
    lambda token: ntlmssp.decode_authenticate(token),
)


def one_input(data: bytes) -> None:
    if not data:
        return
    with contextlib.suppress(MalformedMessage):
        CHECKS[data[0] % len(CHECKS)](data[1:])


if __name__ == "__main__":
    runner.main(one_input, seeds())
