"""NTLMSSP messages (MS-NLMP) as the identity part of an SMB server, sans-IO.

Theory of operation (MS-NLMP §2.2.1.1 NEGOTIATE_MESSAGE, §2.2.1.2
CHALLENGE_MESSAGE, §2.2.1.3 AUTHENTICATE_MESSAGE, §2.2.2.1 AV_PAIR, §2.2.2.5
NEGOTIATE flags, §2.2.2.10 VERSION; §3.2.5.1.1 server receiving NEGOTIATE):

- Every message starts with the signature ``NTLMSSP\\0`` and a 32-bit message
  type. Variable fields are described by 8-byte "fields" headers (Len u16,
  MaxLen u16, BufferOffset u32) pointing into a payload after the fixed
  header. Each pair is checked against the buffer before slicing (an empty
  field's offset is ignored, as Windows and Samba do); strings are UTF-16LE
  when NTLMSSP_NEGOTIATE_UNICODE is set and OEM otherwise (read as latin-1).
  NEGOTIATE's domain and workstation are always OEM.
- The server answers NEGOTIATE with a CHALLENGE whose flags
  (:func:`challenge_flags`) mirror what the client asked among the options a
  Windows server grants, plus REQUEST_TARGET, TARGET_INFO and the target type.
  TargetName is the NetBIOS domain name; TargetInfo is an AV_PAIR list in
  Windows' order (NbDomainName, NbComputerName, DnsDomainName,
  DnsComputerName, DnsTreeName, Timestamp, EOL). Like Windows and Samba, the
  server always sets NTLMSSP_NEGOTIATE_VERSION and fills the VERSION slot
  with its OS version, whether or not the client asked (clients such as
  impacket and nmap read it regardless). The fixed header always holds the
  8-byte VERSION slot, so the payload starts at offset 56: TargetName, then
  TargetInfo.
- The server challenge and the timestamp are injected by the caller; this
  module reads no clock and draws no randomness.
- AUTHENTICATE is decoded only for who the client claims to be and whether
  it is anonymous (MS-NLMP §3.2.5.1.2); no response is verified.
- Cost: every field is one checked slice and one codec call; the one list,
  an AV_PAIR list, holds at most :data:`MAX_AV_PAIRS` pairs (MS-NLMP defines
  eleven AvIds and Windows sends each at most once), past which it is
  :class:`~protocols.errors.Unsupported`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols._wire import Reader, Writer, slice_checked
from protocols.errors import MalformedMessage, Truncated, Unsupported

PROTOCOL = "ntlmssp"

SIGNATURE = b"NTLMSSP\0"
NTLMSSP_REVISION_W2K3 = 15
_FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 in 100 ns since 1601-01-01
_NEGOTIATE_HEADER = 32
_CHALLENGE_HEADER = 48
_AUTHENTICATE_HEADER = 64
_VERSION_LENGTH = 8
MAX_AV_PAIRS = 64
"""Most AV_PAIRs a list may hold before its MsvAvEOL (16,000 fit in one field)."""


class NegotiateFlags(enum.IntFlag):
    """NEGOTIATE flags (MS-NLMP §2.2.2.5), named as in the specification."""

    NTLMSSP_NEGOTIATE_UNICODE = 0x0000_0001
    NTLM_NEGOTIATE_OEM = 0x0000_0002
    NTLMSSP_REQUEST_TARGET = 0x0000_0004
    NTLMSSP_RESERVED_R10 = 0x0000_0008
    NTLMSSP_NEGOTIATE_SIGN = 0x0000_0010
    NTLMSSP_NEGOTIATE_SEAL = 0x0000_0020
    NTLMSSP_NEGOTIATE_DATAGRAM = 0x0000_0040
    NTLMSSP_NEGOTIATE_LM_KEY = 0x0000_0080
    NTLMSSP_RESERVED_R9 = 0x0000_0100
    NTLMSSP_NEGOTIATE_NTLM = 0x0000_0200
    NTLMSSP_RESERVED_R8 = 0x0000_0400
    NTLMSSP_ANONYMOUS = 0x0000_0800
    NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED = 0x0000_1000
    NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED = 0x0000_2000
    NTLMSSP_RESERVED_R7 = 0x0000_4000
    NTLMSSP_NEGOTIATE_ALWAYS_SIGN = 0x0000_8000
    NTLMSSP_TARGET_TYPE_DOMAIN = 0x0001_0000
    NTLMSSP_TARGET_TYPE_SERVER = 0x0002_0000
    NTLMSSP_RESERVED_R6 = 0x0004_0000
    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x0008_0000
    NTLMSSP_NEGOTIATE_IDENTIFY = 0x0010_0000
    NTLMSSP_RESERVED_R5 = 0x0020_0000
    NTLMSSP_REQUEST_NON_NT_SESSION_KEY = 0x0040_0000
    NTLMSSP_NEGOTIATE_TARGET_INFO = 0x0080_0000
    NTLMSSP_RESERVED_R4 = 0x0100_0000
    NTLMSSP_NEGOTIATE_VERSION = 0x0200_0000
    NTLMSSP_RESERVED_R3 = 0x0400_0000
    NTLMSSP_RESERVED_R2 = 0x0800_0000
    NTLMSSP_RESERVED_R1 = 0x1000_0000
    NTLMSSP_NEGOTIATE_128 = 0x2000_0000
    NTLMSSP_NEGOTIATE_KEY_EXCH = 0x4000_0000
    NTLMSSP_NEGOTIATE_56 = 0x8000_0000
    NTLMSSP_NEGOTIATE_OEM = NTLM_NEGOTIATE_OEM


_F = NegotiateFlags

# Options granted when the client asks for them (MS-NLMP §3.2.5.1.1).
_MIRRORED = (
    _F.NTLMSSP_NEGOTIATE_128
    | _F.NTLMSSP_NEGOTIATE_56
    | _F.NTLMSSP_NEGOTIATE_KEY_EXCH
    | _F.NTLMSSP_NEGOTIATE_SIGN
    | _F.NTLMSSP_NEGOTIATE_SEAL
    | _F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | _F.NTLMSSP_NEGOTIATE_NTLM
)


class MessageType(enum.IntEnum):
    """MessageType field of every NTLMSSP message."""

    NEGOTIATE = 1
    CHALLENGE = 2
    AUTHENTICATE = 3


class AvId(enum.IntEnum):
    """AV_PAIR identifiers (MS-NLMP §2.2.2.1)."""

    EOL = 0
    NB_COMPUTER_NAME = 1
    NB_DOMAIN_NAME = 2
    DNS_COMPUTER_NAME = 3
    DNS_DOMAIN_NAME = 4
    DNS_TREE_NAME = 5
    FLAGS = 6
    TIMESTAMP = 7
    SINGLE_HOST = 8
    TARGET_NAME = 9
    CHANNEL_BINDINGS = 10


@dataclass(frozen=True, slots=True)
class NtlmIdentity:
    """What the server says it is in a CHALLENGE."""

    nb_computer_name: str
    nb_domain_name: str
    dns_computer_name: str
    dns_domain_name: str
    dns_tree_name: str
    version: tuple[int, int, int] = (10, 0, 20348)
    target_type_domain: bool = True


@dataclass(frozen=True, slots=True)
class NegotiateMessage:
    """NEGOTIATE_MESSAGE (MS-NLMP §2.2.1.1)."""

    flags: NegotiateFlags
    domain: str
    workstation: str
    version: bytes | None


@dataclass(frozen=True, slots=True)
class ChallengeMessage:
    """CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2); target_info excludes the final EOL."""

    flags: NegotiateFlags
    target_name: str
    server_challenge: bytes
    target_info: tuple[tuple[int, bytes], ...]
    version: bytes | None


@dataclass(frozen=True, slots=True)
class AuthenticateMessage:
    """AUTHENTICATE_MESSAGE (MS-NLMP §2.2.1.3), the parts an identity server needs."""

    flags: NegotiateFlags
    domain: str
    user: str
    workstation: str
    lm_response: bytes
    nt_response: bytes
    is_anonymous: bool


# -- shared helpers -----------------------------------------------------------


def filetime(unix_seconds: float) -> int:
    """FILETIME (100 ns ticks since 1601-01-01 UTC) of a Unix time.

    Raises:
        ValueError: the time is before 1601.
    """
    ticks = _FILETIME_UNIX_EPOCH + round(unix_seconds * 10_000_000)
    if ticks < 0:
        raise ValueError(f"time {unix_seconds} is before 1601")
    return ticks


def encode_version(major: int, minor: int, build: int) -> bytes:
    """The 8-byte VERSION structure (MS-NLMP §2.2.2.10) with revision 15."""
    return bytes((major, minor)) + build.to_bytes(2, "little") + bytes(3) + b"\x0f"


def message_type(token: bytes) -> MessageType:
    """Check the signature and return the message type of ``token``.

    Raises:
        Truncated: fewer than 12 bytes.
        MalformedMessage: wrong signature or unknown message type.
    """
    reader = Reader(token, PROTOCOL)
    if reader.read(len(SIGNATURE)) != SIGNATURE:
        raise MalformedMessage(PROTOCOL, 0, "bad NTLMSSP signature")
    value = reader.u32le()
    try:
        return MessageType(value)
    except ValueError:
        raise MalformedMessage(PROTOCOL, 8, f"unknown message type {value}") from None


def _expect_type(token: bytes, expected: MessageType, header: int) -> Reader:
    got = message_type(token)
    if got is not expected:
        raise MalformedMessage(PROTOCOL, 8, f"expected {expected.name}, got {got.name}")
    if len(token) < header:
        raise Truncated(PROTOCOL, len(token), f"{expected.name} shorter than {header} bytes")
    return Reader(token, PROTOCOL, start=12)


def _field(reader: Reader) -> tuple[int, int]:
    """Read a Len/MaxLen/BufferOffset triple; return (offset, length)."""
    length = reader.u16le()
    reader.skip(2)
    return reader.u32le(), length


def _payload(token: bytes, field: tuple[int, int]) -> bytes:
    offset, length = field
    if length == 0:
        return b""
    return slice_checked(token, offset, length, PROTOCOL)


def _text(token: bytes, field: tuple[int, int], unicode: bool) -> str:
    raw = _payload(token, field)
    if not unicode:
        return raw.decode("latin-1")
    if len(raw) % 2:
        raise MalformedMessage(PROTOCOL, field[0], f"odd UTF-16 length {len(raw)}")
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(PROTOCOL, field[0] + exc.start, "invalid UTF-16") from None


def _encode_text(text: str, unicode: bool) -> bytes:
    return text.encode("utf-16-le" if unicode else "latin-1")


def _version(token: bytes, flags: NegotiateFlags, offset: int) -> bytes | None:
    if not flags & _F.NTLMSSP_NEGOTIATE_VERSION:
        return None
    return slice_checked(token, offset, _VERSION_LENGTH, PROTOCOL)


class _Payload:
    """Lays out variable fields after a fixed header and writes their descriptors."""

    __slots__ = ("data", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.data = bytearray()

    def add(self, header: Writer, value: bytes) -> None:
        if len(value) > 0xFFFF:
            raise ValueError(f"NTLMSSP field of {len(value)} bytes exceeds 65535")
        header.u16le(len(value))
        header.u16le(len(value))
        header.u32le(self.start + len(self.data))
        self.data += value


# -- NEGOTIATE ----------------------------------------------------------------


def decode_negotiate(token: bytes) -> NegotiateMessage:
    """Decode a NEGOTIATE_MESSAGE; domain and workstation are OEM strings.

    Raises:
        Truncated: shorter than the 32-byte header, a field outside the token,
            or VERSION flagged but missing.
        MalformedMessage: bad signature or a message type other than NEGOTIATE.
    """
    reader = _expect_type(token, MessageType.NEGOTIATE, _NEGOTIATE_HEADER)
    flags = NegotiateFlags(reader.u32le())
    domain = _field(reader)
    workstation = _field(reader)
    return NegotiateMessage(
        flags=flags,
        domain=_text(token, domain, unicode=False),
        workstation=_text(token, workstation, unicode=False),
        version=_version(token, flags, _NEGOTIATE_HEADER),
    )


def encode_negotiate(message: NegotiateMessage) -> bytes:
    """Encode a NEGOTIATE_MESSAGE (a client's first leg; for tests and probes).

    The VERSION slot is written when ``message.version`` is set.

    Raises:
        UnicodeEncodeError: a name outside latin-1.
        ValueError: a field longer than 65535 bytes.
    """
    start = _NEGOTIATE_HEADER + (_VERSION_LENGTH if message.version is not None else 0)
    header = Writer()
    header.write(SIGNATURE)
    header.u32le(MessageType.NEGOTIATE)
    header.u32le(message.flags)
    payload = _Payload(start)
    payload.add(header, _encode_text(message.domain, unicode=False))
    payload.add(header, _encode_text(message.workstation, unicode=False))
    if message.version is not None:
        header.write(message.version)
    return header.getvalue() + bytes(payload.data)


# -- CHALLENGE ----------------------------------------------------------------


def challenge_flags(client_flags: NegotiateFlags, identity: NtlmIdentity) -> NegotiateFlags:
    """Flags of the CHALLENGE answering a NEGOTIATE with ``client_flags``.

    Mirrors UNICODE (else OEM), EXTENDED_SESSIONSECURITY (preferred over
    LM_KEY) and the options in ``_MIRRORED``; always sets REQUEST_TARGET,
    TARGET_INFO, VERSION and the target type of ``identity``.
    """
    flags = client_flags & _MIRRORED
    flags |= _F.NTLMSSP_REQUEST_TARGET | _F.NTLMSSP_NEGOTIATE_TARGET_INFO
    flags |= _F.NTLMSSP_NEGOTIATE_VERSION
    if client_flags & _F.NTLMSSP_NEGOTIATE_UNICODE:
        flags |= _F.NTLMSSP_NEGOTIATE_UNICODE
    else:
        flags |= _F.NTLM_NEGOTIATE_OEM
    if client_flags & _F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY:
        flags |= _F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    elif client_flags & _F.NTLMSSP_NEGOTIATE_LM_KEY:
        flags |= _F.NTLMSSP_NEGOTIATE_LM_KEY
    if identity.target_type_domain:
        return flags | _F.NTLMSSP_TARGET_TYPE_DOMAIN
    return flags | _F.NTLMSSP_TARGET_TYPE_SERVER


def target_info(identity: NtlmIdentity, timestamp: int) -> tuple[tuple[int, bytes], ...]:
    """The AV pairs of ``identity`` in Windows' order, without the final EOL."""
    names = (
        (AvId.NB_DOMAIN_NAME, identity.nb_domain_name),
        (AvId.NB_COMPUTER_NAME, identity.nb_computer_name),
        (AvId.DNS_DOMAIN_NAME, identity.dns_domain_name),
        (AvId.DNS_COMPUTER_NAME, identity.dns_computer_name),
        (AvId.DNS_TREE_NAME, identity.dns_tree_name),
    )
    pairs = [(int(av_id), name.encode("utf-16-le")) for av_id, name in names]
    pairs.append((int(AvId.TIMESTAMP), timestamp.to_bytes(8, "little")))
    return tuple(pairs)


def encode_av_pairs(pairs: tuple[tuple[int, bytes], ...]) -> bytes:
    """AV_PAIR list (MS-NLMP §2.2.2.1) terminated by MsvAvEOL.

    Raises:
        ValueError: a value longer than 65535 bytes.
    """
    out = Writer()
    for av_id, value in (*pairs, (int(AvId.EOL), b"")):
        if len(value) > 0xFFFF:
            raise ValueError(f"AV_PAIR value of {len(value)} bytes exceeds 65535")
        out.u16le(av_id)
        out.u16le(len(value))
        out.write(value)
    return out.getvalue()


def decode_av_pairs(data: bytes, base: int = 0) -> tuple[tuple[int, bytes], ...]:
    """Parse an AV_PAIR list up to MsvAvEOL, which must end ``data``.

    ``base`` is the list's offset in the message, for error offsets.

    Raises:
        Truncated: a pair runs past the data, or no MsvAvEOL.
        Unsupported: more than :data:`MAX_AV_PAIRS` pairs before MsvAvEOL.
        MalformedMessage: MsvAvEOL with a value; TrailingBytes after it.
    """
    reader = Reader(data, PROTOCOL)
    pairs: list[tuple[int, bytes]] = []
    while True:
        offset = reader.offset
        av_id = reader.u16le()
        value = reader.read(reader.u16le())
        if av_id == AvId.EOL:
            if value:
                raise MalformedMessage(PROTOCOL, base + offset, "MsvAvEOL with a value")
            reader.expect_end()
            return tuple(pairs)
        if len(pairs) == MAX_AV_PAIRS:
            raise Unsupported(PROTOCOL, base + offset, f"more than {MAX_AV_PAIRS} AV_PAIRs")
        pairs.append((av_id, value))


def encode_challenge_message(message: ChallengeMessage) -> bytes:
    """Encode a CHALLENGE_MESSAGE: 56-byte header, then TargetName, then TargetInfo.

    The VERSION slot holds ``message.version`` or zeros.

    Raises:
        ValueError: the server challenge is not 8 bytes, or a field is longer
            than 65535 bytes.
        UnicodeEncodeError: an OEM target name outside latin-1.
    """
    if len(message.server_challenge) != 8:
        raise ValueError("server challenge must be 8 bytes")
    unicode = bool(message.flags & _F.NTLMSSP_NEGOTIATE_UNICODE)
    header = Writer()
    header.write(SIGNATURE)
    header.u32le(MessageType.CHALLENGE)
    payload = _Payload(_CHALLENGE_HEADER + _VERSION_LENGTH)
    payload.add(header, _encode_text(message.target_name, unicode))
    header.u32le(message.flags)
    header.write(message.server_challenge)
    header.write(bytes(8))
    payload.add(header, encode_av_pairs(message.target_info))
    header.write(message.version or bytes(_VERSION_LENGTH))
    return header.getvalue() + bytes(payload.data)


def encode_challenge(
    identity: NtlmIdentity,
    client_flags: NegotiateFlags,
    *,
    server_challenge: bytes,
    timestamp: int,
) -> bytes:
    """The CHALLENGE answering a NEGOTIATE with ``client_flags``.

    VERSION is always present, holding ``identity.version``.
    ``server_challenge`` (8 random bytes) and ``timestamp`` (a FILETIME, see
    :func:`filetime`) come from the caller.

    Raises:
        ValueError: the server challenge is not 8 bytes, or the names make
            TargetInfo longer than 65535 bytes.
    """
    flags = challenge_flags(client_flags, identity)
    unicode = bool(flags & _F.NTLMSSP_NEGOTIATE_UNICODE)
    name = identity.nb_domain_name
    if not unicode:
        name = name.encode("latin-1", "replace").decode("latin-1")
    return encode_challenge_message(
        ChallengeMessage(
            flags=flags,
            target_name=name,
            server_challenge=server_challenge,
            target_info=target_info(identity, timestamp),
            version=encode_version(*identity.version),
        )
    )


def decode_challenge(token: bytes) -> ChallengeMessage:
    """Decode a CHALLENGE_MESSAGE.

    Raises:
        Truncated: shorter than the 48-byte header or a field outside the token.
        MalformedMessage: bad signature, wrong message type, odd or invalid
            UTF-16 target name, or a malformed AV_PAIR list (Unsupported
            past :data:`MAX_AV_PAIRS` pairs).
    """
    reader = _expect_type(token, MessageType.CHALLENGE, _CHALLENGE_HEADER)
    name_field = _field(reader)
    flags = NegotiateFlags(reader.u32le())
    server_challenge = reader.read(8)
    reader.skip(8)
    info_field = _field(reader)
    info = _payload(token, info_field)
    return ChallengeMessage(
        flags=flags,
        target_name=_text(token, name_field, bool(flags & _F.NTLMSSP_NEGOTIATE_UNICODE)),
        server_challenge=server_challenge,
        target_info=decode_av_pairs(info, info_field[0]) if info else (),
        version=_version(token, flags, _CHALLENGE_HEADER),
    )


# -- AUTHENTICATE -------------------------------------------------------------


def _is_anonymous(user: str, lm_response: bytes, nt_response: bytes) -> bool:
    """MS-NLMP §3.2.5.1.2 anonymous: no user name, and no NT or a Z(1) LM response.

    A named user who proves nothing (Samba's ``smbclient -N`` first sends its
    Unix user name with empty responses) is not anonymous: that logon fails,
    and the client retries with an empty user name. Treating it as a null
    session would make the client expect signatures from a key it derived.
    """
    return user == "" and (nt_response == b"" or lm_response == b"\0")


def decode_authenticate(token: bytes) -> AuthenticateMessage:
    """Decode who an AUTHENTICATE_MESSAGE claims to be; nothing is verified.

    Raises:
        Truncated: shorter than the 64-byte header or a field outside the token.
        MalformedMessage: bad signature, wrong message type, or odd/invalid
            UTF-16 in a name.
    """
    reader = _expect_type(token, MessageType.AUTHENTICATE, _AUTHENTICATE_HEADER)
    lm, nt, domain, user, workstation = (_field(reader) for _ in range(5))
    reader.skip(8)  # EncryptedRandomSessionKeyFields
    flags = NegotiateFlags(reader.u32le())
    unicode = bool(flags & _F.NTLMSSP_NEGOTIATE_UNICODE)
    lm_response, nt_response = _payload(token, lm), _payload(token, nt)
    user_name = _text(token, user, unicode)
    return AuthenticateMessage(
        flags=flags,
        domain=_text(token, domain, unicode),
        user=user_name,
        workstation=_text(token, workstation, unicode),
        lm_response=lm_response,
        nt_response=nt_response,
        is_anonymous=_is_anonymous(user_name, lm_response, nt_response),
    )


def encode_authenticate(message: AuthenticateMessage) -> bytes:
    """Encode an AUTHENTICATE_MESSAGE without session key, VERSION or MIC.

    For tests and probes; ``is_anonymous`` is derived on decode, not written.

    Raises:
        UnicodeEncodeError: an OEM name outside latin-1.
        ValueError: a field longer than 65535 bytes.
    """
    unicode = bool(message.flags & _F.NTLMSSP_NEGOTIATE_UNICODE)
    header = Writer()
    header.write(SIGNATURE)
    header.u32le(MessageType.AUTHENTICATE)
    payload = _Payload(_AUTHENTICATE_HEADER)
    payload.add(header, message.lm_response)
    payload.add(header, message.nt_response)
    for text in (message.domain, message.user, message.workstation):
        payload.add(header, _encode_text(text, unicode))
    payload.add(header, b"")
    header.u32le(message.flags)
    return header.getvalue() + bytes(payload.data)
