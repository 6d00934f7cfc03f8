"""SPNEGO tokens as an SMB server sees them, sans-IO.

Theory of operation (RFC 4178 §4.2; RFC 2743 §3.1; MS-SPNG §2.2.1, §3.2.5.2):

- The server advertises its mechanisms in the SMB NEGOTIATE response with a
  GSS-API InitialContextToken ``[APPLICATION 0] { thisMech spnego,
  negTokenInit [0] NegTokenInit2 }``. NegTokenInit2 (MS-SPNG §2.2.1) carries
  ``mechTypes [0]`` and ``negHints [3] { hintName [0] GeneralString }`` with the
  fixed hint ``not_defined_in_RFC4178@please_ignore`` that Windows and Samba
  send; :func:`encode_neg_token_init2` builds it.
- The client's first SESSION_SETUP carries the same wrapper around a
  NegTokenInit (RFC 4178 §4.2.1) whose ``mechToken [2]`` is the optimistic
  token of its preferred mechanism (an NTLMSSP NEGOTIATE). Later legs carry a
  bare ``negTokenResp [1]`` (RFC 4178 §4.2.2) whose ``responseToken [2]`` is
  the next mechanism token. Some clients skip SPNEGO and send raw NTLMSSP.
  :func:`decode_client_token` accepts all three forms.
- The server answers with negTokenResp: ``negState [0] ENUMERATED``,
  ``supportedMech [1]``, ``responseToken [2]`` (the NTLMSSP CHALLENGE) and
  optionally ``mechListMIC [3]``.
- Fields of a SEQUENCE are explicitly tagged ``[n]`` and must appear in
  ascending order; fields we do not use (reqFlags, negHints, mechListMIC of a
  NegTokenInit) are checked as TLVs and skipped. Every length is bounded by
  :mod:`protocols.auth._der`, so hostile input raises :class:`MalformedMessage`.
- Cost: ascending tags bound a SEQUENCE to 31 fields and ``_der`` bounds
  nesting and OIDs; the one list, mechTypes, holds at most
  :data:`MAX_MECH_TYPES` OIDs (clients offer four or five: Kerberos twice,
  NEGOEX, NTLMSSP), past which the token is :class:`Unsupported`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.auth import _der
from protocols.auth._der import DerReader, context, decode_oid, encode_oid, tlv
from protocols.errors import MalformedMessage, Truncated, Unsupported

__all__ = [
    "OID_KRB5",
    "OID_MS_KRB5",
    "OID_NTLMSSP",
    "OID_SPNEGO",
    "NegState",
    "NegTokenInit",
    "NegTokenResp",
    "decode_client_token",
    "decode_oid",
    "encode_neg_token_init",
    "encode_neg_token_init2",
    "encode_neg_token_resp",
    "encode_oid",
    "ntlm_mech_token",
]

PROTOCOL = "spnego"

OID_SPNEGO = "1.3.6.1.5.5.2"
OID_NTLMSSP = "1.3.6.1.4.1.311.2.2.10"
OID_KRB5 = "1.2.840.113554.1.2.2"
OID_MS_KRB5 = "1.2.840.48018.1.2.2"

NEG_HINT_NAME = b"not_defined_in_RFC4178@please_ignore"
_NTLMSSP_SIGNATURE = b"NTLMSSP\0"
MAX_MECH_TYPES = 32
"""Most mechanisms a NegTokenInit may offer."""

_INIT_MECH_TYPES = 0
_INIT_MECH_TOKEN = 2
_INIT2_NEG_HINTS = 3
_RESP_NEG_STATE = 0
_RESP_SUPPORTED_MECH = 1
_RESP_RESPONSE_TOKEN = 2
_RESP_MECH_LIST_MIC = 3


class NegState(enum.IntEnum):
    """negState of a NegTokenResp (RFC 4178 §4.2.2)."""

    ACCEPT_COMPLETED = 0
    ACCEPT_INCOMPLETE = 1
    REJECT = 2
    REQUEST_MIC = 3


@dataclass(frozen=True, slots=True)
class NegTokenInit:
    """A client's NegTokenInit: offered mechanisms and an optional optimistic token."""

    mech_types: tuple[str, ...]
    mech_token: bytes | None


@dataclass(frozen=True, slots=True)
class NegTokenResp:
    """A NegTokenResp leg; every field is optional on the wire."""

    neg_state: NegState | None
    supported_mech: str | None
    response_token: bytes | None
    mech_list_mic: bytes | None


# -- decoding -----------------------------------------------------------------


def _fields(seq: DerReader) -> dict[int, DerReader]:
    """Explicitly tagged fields [n] of a SEQUENCE, in strictly ascending order."""
    found: dict[int, DerReader] = {}
    last = -1
    while not seq.at_end():
        offset = seq.offset
        tag, field = seq.read_constructed()
        number = tag & 0x1F
        if tag & 0xE0 != 0xA0 or number <= last:
            raise MalformedMessage(PROTOCOL, offset, f"unexpected field tag 0x{tag:02x}")
        found[number] = field
        last = number
    return found


def _single(field: DerReader, tag: int) -> bytes:
    content = field.expect(tag)
    field.expect_end()
    return content.rest()


def _mech_types(field: DerReader) -> tuple[str, ...]:
    seq = field.enter(_der.TAG_SEQUENCE)
    field.expect_end()
    mechs: list[str] = []
    while not seq.at_end():
        if len(mechs) == MAX_MECH_TYPES:
            raise Unsupported(PROTOCOL, seq.offset, f"more than {MAX_MECH_TYPES} mechTypes")
        mechs.append(decode_oid(seq.expect(_der.TAG_OID).rest(), PROTOCOL))
    return tuple(mechs)


def _neg_token_init(field: DerReader) -> NegTokenInit:
    seq = field.enter(_der.TAG_SEQUENCE)
    field.expect_end()
    offset = seq.offset
    fields = _fields(seq)
    if _INIT_MECH_TYPES not in fields:
        raise MalformedMessage(PROTOCOL, offset, "NegTokenInit without mechTypes")
    token = fields.get(_INIT_MECH_TOKEN)
    return NegTokenInit(
        mech_types=_mech_types(fields[_INIT_MECH_TYPES]),
        mech_token=None if token is None else _single(token, _der.TAG_OCTET_STRING),
    )


def _neg_state(field: DerReader) -> NegState:
    offset = field.offset
    raw = _single(field, _der.TAG_ENUMERATED)
    if len(raw) != 1 or raw[0] > max(NegState):
        raise MalformedMessage(PROTOCOL, offset, f"negState {raw.hex()} out of range")
    return NegState(raw[0])


def _neg_token_resp(field: DerReader) -> NegTokenResp:
    seq = field.enter(_der.TAG_SEQUENCE)
    field.expect_end()
    fields = _fields(seq)
    state = fields.get(_RESP_NEG_STATE)
    mech = fields.get(_RESP_SUPPORTED_MECH)
    token = fields.get(_RESP_RESPONSE_TOKEN)
    mic = fields.get(_RESP_MECH_LIST_MIC)
    return NegTokenResp(
        neg_state=None if state is None else _neg_state(state),
        supported_mech=None if mech is None else decode_oid(_single(mech, _der.TAG_OID), PROTOCOL),
        response_token=None if token is None else _single(token, _der.TAG_OCTET_STRING),
        mech_list_mic=None if mic is None else _single(mic, _der.TAG_OCTET_STRING),
    )


def _initial_context_token(top: DerReader) -> NegTokenInit:
    body = top.enter(_der.TAG_APPLICATION_0)
    top.expect_end()
    offset = body.offset
    mech = decode_oid(body.expect(_der.TAG_OID).rest(), PROTOCOL)
    if mech != OID_SPNEGO:
        raise Unsupported(PROTOCOL, offset, f"GSS-API mechanism {mech} is not SPNEGO")
    init = _neg_token_init(body.enter(context(0)))
    body.expect_end()
    return init


def decode_client_token(blob: bytes) -> NegTokenInit | NegTokenResp | bytes:
    """Decode a client's SESSION_SETUP security blob.

    Returns a :class:`NegTokenInit` for the GSS-API wrapped first leg
    (``0x60 ...``), a :class:`NegTokenResp` for a bare ``negTokenResp [1]``, or
    the blob itself when it is a raw NTLMSSP token (``NTLMSSP\\0`` signature).

    Raises:
        Truncated: the blob is empty or an element runs past its container.
        TrailingBytes: bytes follow the token or a single-valued field.
        Unsupported: a GSS-API token for a mechanism other than SPNEGO, over
            :data:`MAX_MECH_TYPES` mechanisms or an OID over
            :data:`~protocols.auth._der.MAX_OID_OCTETS` octets.
        MalformedMessage: any other structural error (tags, order, lengths).
    """
    if blob.startswith(_NTLMSSP_SIGNATURE):
        return blob
    if not blob:
        raise Truncated(PROTOCOL, 0, "empty security blob")
    top = DerReader.over(blob, PROTOCOL)
    if blob[0] == _der.TAG_APPLICATION_0:
        return _initial_context_token(top)
    if blob[0] == context(1):
        resp = _neg_token_resp(top.enter(context(1)))
        top.expect_end()
        return resp
    raise MalformedMessage(PROTOCOL, 0, f"unknown security blob start 0x{blob[0]:02x}")


def ntlm_mech_token(init: NegTokenInit) -> bytes | None:
    """The optimistic NTLMSSP token of ``init``, or None.

    None when NTLMSSP is not the client's first choice or no token came with
    it. If NTLMSSP is listed further down, RFC 4178 §5 has the acceptor name
    it in ``supportedMech`` with no response token (negState request-mic)
    and wait for the NTLMSSP NEGOTIATE in the next negTokenResp; if it is not
    listed at all, the answer is negState reject.
    """
    first_choice = bool(init.mech_types) and init.mech_types[0] == OID_NTLMSSP
    if not first_choice or init.mech_token is None:
        return None
    return init.mech_token


# -- encoding -----------------------------------------------------------------


def _mech_type_list(mech_types: tuple[str, ...]) -> bytes:
    oids = b"".join(tlv(_der.TAG_OID, encode_oid(m)) for m in mech_types)
    return tlv(context(_INIT_MECH_TYPES), tlv(_der.TAG_SEQUENCE, oids))


def _wrap_init(fields: bytes) -> bytes:
    init = tlv(context(0), tlv(_der.TAG_SEQUENCE, fields))
    return tlv(_der.TAG_APPLICATION_0, tlv(_der.TAG_OID, encode_oid(OID_SPNEGO)) + init)


def encode_neg_token_init2(mech_types: tuple[str, ...] = (OID_NTLMSSP,)) -> bytes:
    """The GSS-API wrapped NegTokenInit2 an SMB server puts in its NEGOTIATE response.

    Raises:
        ValueError: a mechanism is not a dotted OID.
    """
    hint = tlv(context(0), tlv(_der.TAG_GENERAL_STRING, NEG_HINT_NAME))
    hints = tlv(context(_INIT2_NEG_HINTS), tlv(_der.TAG_SEQUENCE, hint))
    return _wrap_init(_mech_type_list(mech_types) + hints)


def encode_neg_token_init(mech_types: tuple[str, ...], mech_token: bytes | None = None) -> bytes:
    """A client's GSS-API wrapped NegTokenInit (for tests and test clients).

    Raises:
        ValueError: a mechanism is not a dotted OID.
    """
    fields = _mech_type_list(mech_types)
    if mech_token is not None:
        fields += tlv(context(_INIT_MECH_TOKEN), tlv(_der.TAG_OCTET_STRING, mech_token))
    return _wrap_init(fields)


def encode_neg_token_resp(
    neg_state: NegState | None,
    *,
    supported_mech: str | None = None,
    response_token: bytes | None = None,
    mech_list_mic: bytes | None = None,
) -> bytes:
    """A bare ``negTokenResp [1]`` with the fields that are not None.

    Raises:
        ValueError: ``supported_mech`` is not a dotted OID.
    """
    fields = b""
    if neg_state is not None:
        state = tlv(_der.TAG_ENUMERATED, bytes((int(neg_state),)))
        fields += tlv(context(_RESP_NEG_STATE), state)
    if supported_mech is not None:
        oid = tlv(_der.TAG_OID, encode_oid(supported_mech))
        fields += tlv(context(_RESP_SUPPORTED_MECH), oid)
    if response_token is not None:
        token = tlv(_der.TAG_OCTET_STRING, response_token)
        fields += tlv(context(_RESP_RESPONSE_TOKEN), token)
    if mech_list_mic is not None:
        mic = tlv(_der.TAG_OCTET_STRING, mech_list_mic)
        fields += tlv(context(_RESP_MECH_LIST_MIC), mic)
    return tlv(context(1), tlv(_der.TAG_SEQUENCE, fields))
