"""SMB1 (CIFS) NEGOTIATE and SESSION_SETUP_ANDX, as far as identity needs them.

Theory of operation
-------------------
An SMB1 message (MS-CIFS §2.2.3) is a 32-byte header -- Protocol ``FF 'SMB'``,
Command, Status (NTSTATUS when FLAGS2_NT_STATUS), Flags, Flags2, PIDHigh,
SecurityFeatures, Reserved, TID, PIDLow, UID, MID -- then a parameter block
(WordCount and 2*WordCount bytes) and a data block (ByteCount and the bytes).
Every decoder here, :func:`decode_header` included, takes the whole message
as bytes, header first, as :mod:`protocols.smb.smb2` does.

SMB_COM_NEGOTIATE (MS-CIFS §2.2.4.52) carries a list of dialect strings, each
``0x02`` then a NUL-terminated OEM string.  A modern client also lists
"SMB 2.002" / "SMB 2.???" there to move to SMB2 (MS-SMB2 §3.3.5.3.1).  The
NT LM 0.12 response (WordCount 17) comes in two forms: without extended
security it carries an 8-byte challenge, DomainName and ServerName
(MS-CIFS §2.2.4.52.2); with it (MS-SMB §2.2.4.5.2) a ServerGUID and a SPNEGO
token.

SMB_COM_SESSION_SETUP_ANDX request (MS-SMB §2.2.4.6.1 with extended security,
WordCount 12; MS-CIFS §2.2.4.53.1 without, WordCount 13) and the responses we
send: the extended one (WordCount 4, a security blob then NativeOS,
NativeLanMan and PrimaryDomain, as Windows and Samba send) and an error
(WordCount 0, ByteCount 0).  A null session also needs SMB_COM_ECHO
(MS-CIFS §2.2.4.39: EchoCount, data echoed back with a SequenceNumber) and the
SMB_COM_LOGOFF_ANDX response (§2.2.4.54.2, WordCount 2, ByteCount 0).  Strings are UTF-16LE
when FLAGS2_UNICODE is set, aligned to 2 bytes from the header start, else
OEM (Latin-1 here); a missing final terminator is tolerated, as Windows does.

Cost: every decoder here reads a fixed number of fields, at most
:data:`MAX_DIALECTS` dialects, and finds each string's terminator with one C
call (``bytes.find``, or one regular-expression match for UTF-16, whose
terminator must sit on a code-unit boundary), never a Python loop per byte.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Final

from protocols._wire import Reader, Writer
from protocols.errors import MalformedMessage, Unsupported

PROTOCOL: Final = "smb1"
PROTOCOL_ID: Final = b"\xffSMB"
HEADER_SIZE: Final = 32
MAX_DIALECTS: Final = 64
NT_LM_012: Final = "NT LM 0.12"
SMB2_002: Final = "SMB 2.002"
SMB2_WILDCARD: Final = "SMB 2.???"
# A run of UTF-16 code units other than NUL: two bytes each, not both zero.
_UTF16_NOT_NUL: Final = re.compile(rb"(?:[^\x00].|\x00[^\x00])*+", re.DOTALL)


class Command(enum.IntEnum):
    """MS-CIFS §2.2.2.1 command codes used here."""

    ECHO = 0x2B
    NEGOTIATE = 0x72
    SESSION_SETUP_ANDX = 0x73
    LOGOFF_ANDX = 0x74
    TREE_CONNECT_ANDX = 0x75
    NO_ANDX_COMMAND = 0xFF


class Flags(enum.IntFlag):
    """MS-CIFS §2.2.3.1 Flags."""

    CASE_INSENSITIVE = 0x08
    CANONICALIZED_PATHS = 0x10
    REPLY = 0x80


class Flags2(enum.IntFlag):
    """MS-CIFS §2.2.3.1 / MS-SMB §2.2.3.1 Flags2."""

    LONG_NAMES = 0x0001
    EAS = 0x0002
    SECURITY_SIGNATURE = 0x0004
    IS_LONG_NAME = 0x0040
    EXTENDED_SECURITY = 0x0800
    DFS = 0x1000
    PAGING_IO = 0x2000
    NT_STATUS = 0x4000
    UNICODE = 0x8000


class Capabilities(enum.IntFlag):
    """MS-CIFS §2.2.4.52.2 / MS-SMB §2.2.4.5.2 server capabilities."""

    RAW_MODE = 0x00000001
    UNICODE = 0x00000004
    LARGE_FILES = 0x00000008
    NT_SMBS = 0x00000010
    RPC_REMOTE_APIS = 0x00000020
    STATUS32 = 0x00000040
    LEVEL_II_OPLOCKS = 0x00000080
    LOCK_AND_READ = 0x00000100
    NT_FIND = 0x00000200
    DFS = 0x00001000
    INFOLEVEL_PASSTHRU = 0x00002000
    LARGE_READX = 0x00004000
    LARGE_WRITEX = 0x00008000
    LWIO = 0x00010000
    EXTENDED_SECURITY = 0x80000000


class SecurityMode(enum.IntFlag):
    """MS-CIFS §2.2.4.52.2 SecurityMode."""

    USER_SECURITY = 0x01
    ENCRYPT_PASSWORDS = 0x02
    SECURITY_SIGNATURES_ENABLED = 0x04
    SECURITY_SIGNATURES_REQUIRED = 0x08


@dataclass(frozen=True, slots=True)
class Header:
    """MS-CIFS §2.2.3.1 header."""

    command: int
    status: int = 0
    flags: int = 0
    flags2: int = 0
    pid_high: int = 0
    security_features: bytes = bytes(8)
    tid: int = 0
    pid_low: int = 0
    uid: int = 0
    mid: int = 0


@dataclass(frozen=True, slots=True)
class NegotiateRequest:
    header: Header
    dialects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionSetupRequest:
    """Both request forms; ``security_blob`` is None without extended security."""

    header: Header
    max_buffer_size: int
    max_mpx_count: int
    vc_number: int
    session_key: int
    capabilities: int
    security_blob: bytes | None
    oem_password: bytes = b""
    unicode_password: bytes = b""
    account_name: str = ""
    primary_domain: str = ""
    native_os: str = ""
    native_lanman: str = ""


@dataclass(frozen=True, slots=True)
class NegotiateResponse:
    """NT LM 0.12 response; ``server_guid`` is set exactly with extended security."""

    header: Header
    dialect_index: int
    security_mode: int
    max_mpx_count: int
    max_number_vcs: int
    max_buffer_size: int
    max_raw_size: int
    session_key: int
    capabilities: Capabilities
    system_time: int
    server_time_zone: int
    challenge: bytes = b""
    domain_name: str = ""
    server_name: str = ""
    server_guid: bytes | None = None
    security_blob: bytes = b""


@dataclass(frozen=True, slots=True)
class EchoRequest:
    header: Header
    echo_count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SessionSetupResponse:
    """Extended-security SESSION_SETUP_ANDX response (WordCount 4)."""

    header: Header
    action: int
    security_blob: bytes
    native_os: str
    native_lanman: str
    primary_domain: str = ""


def decode_header(message: bytes) -> Header:
    """Decode the 32-byte header at the start of ``message``.

    Raises:
        MalformedMessage: short message (Truncated) or a wrong Protocol field.
    """
    reader = Reader(message, PROTOCOL)
    if reader.read(4) != PROTOCOL_ID:
        raise MalformedMessage(PROTOCOL, 0, "Protocol is not FF 'SMB'")
    command, status, flags, flags2 = reader.u8(), reader.u32le(), reader.u8(), reader.u16le()
    pid_high, features = reader.u16le(), reader.read(8)
    reader.skip(2)
    tid, pid_low, uid, mid = reader.u16le(), reader.u16le(), reader.u16le(), reader.u16le()
    return Header(command, status, flags, flags2, pid_high, features, tid, pid_low, uid, mid)


def _write_header(writer: Writer, header: Header) -> None:
    writer.write(PROTOCOL_ID)
    writer.u8(header.command)
    writer.u32le(header.status)
    writer.u8(header.flags)
    writer.u16le(header.flags2)
    writer.u16le(header.pid_high)
    writer.write(header.security_features)
    writer.u16le(0)
    for value in (header.tid, header.pid_low, header.uid, header.mid):
        writer.u16le(value)


def _blocks(message: bytes, command: Command) -> tuple[Header, Reader, Reader]:
    """Header, parameter words and data bytes of a message of ``command``."""
    header = decode_header(message)
    reader = Reader(message, PROTOCOL, start=HEADER_SIZE)
    if header.command != command:
        raise Unsupported(PROTOCOL, 4, f"command {header.command:#04x}, expected {command.name}")
    words = reader.restrict(2 * reader.u8())
    data = reader.restrict(reader.u16le())
    return header, words, data


def decode_negotiate_request(message: bytes) -> NegotiateRequest:
    """Decode SMB_COM_NEGOTIATE (header included).

    Raises:
        MalformedMessage: bad header, WordCount not 0, a dialect without the
            0x02 marker or terminator, or more than MAX_DIALECTS dialects.
    """
    header, words, data = _blocks(message, Command.NEGOTIATE)
    words.expect_end()
    dialects: list[str] = []
    while data.remaining:
        if len(dialects) == MAX_DIALECTS:
            raise MalformedMessage(PROTOCOL, data.offset, "too many dialects")
        if data.u8() != 0x02:
            raise MalformedMessage(PROTOCOL, data.offset - 1, "dialect without 0x02 marker")
        end = message.find(b"\x00", data.offset, data.end)
        if end < 0:
            raise MalformedMessage(PROTOCOL, data.offset, "unterminated dialect")
        dialects.append(data.read(end - data.offset).decode("latin-1"))
        data.skip(1)
    return NegotiateRequest(header, tuple(dialects))


def encode_negotiate_request(request: NegotiateRequest) -> bytes:
    """Encode SMB_COM_NEGOTIATE (for tests and probes).

    Raises:
        UnicodeEncodeError: a dialect that is not Latin-1 (a caller bug).
    """
    data = b"".join(b"\x02" + d.encode("latin-1") + b"\x00" for d in request.dialects)
    writer = Writer()
    _write_header(writer, request.header)
    writer.u8(0)
    writer.u16le(len(data))
    writer.write(data)
    return writer.getvalue()


def _read_string(message: bytes, data: Reader, unicode: bool, *, align: bool = True) -> str:
    """Read one NUL-terminated string; the last one may lack its terminator."""
    if not data.remaining:
        return ""
    if not unicode:
        end = message.find(b"\x00", data.offset, data.end)
        text = data.read((data.end if end < 0 else end) - data.offset)
        data.skip(min(1, data.remaining))
        return text.decode("latin-1")
    if align and data.offset % 2:
        data.skip(1)
    run = _UTF16_NOT_NUL.match(message, data.offset, data.end)
    text = data.read((run.end() if run else data.offset) - data.offset)
    data.skip(min(2, data.remaining))
    return text.decode("utf-16-le", errors="replace")


def decode_session_setup_request(message: bytes) -> SessionSetupRequest:
    """Decode SMB_COM_SESSION_SETUP_ANDX (header included), either form.

    Raises:
        MalformedMessage: bad header, a WordCount other than 12 or 13
            (Unsupported for the LANMAN form, 10), or blobs outside ByteCount.
    """
    header, words, data = _blocks(message, Command.SESSION_SETUP_ANDX)
    count = words.remaining // 2
    if count not in (12, 13):
        raise Unsupported(PROTOCOL, HEADER_SIZE, f"SESSION_SETUP_ANDX WordCount {count}")
    words.skip(4)  # AndXCommand, AndXReserved, AndXOffset
    read = _extended_setup_request if count == 12 else _plain_setup_request
    return read(message, header, words, data)


def _extended_setup_request(
    message: bytes, header: Header, words: Reader, data: Reader
) -> SessionSetupRequest:
    """MS-SMB §2.2.4.6.1, WordCount 12, from MaxBufferSize on."""
    unicode = bool(header.flags2 & Flags2.UNICODE)
    max_buffer, max_mpx, vc_number = words.u16le(), words.u16le(), words.u16le()
    session_key, blob_length = words.u32le(), words.u16le()
    words.skip(4)
    return SessionSetupRequest(
        header=header,
        max_buffer_size=max_buffer,
        max_mpx_count=max_mpx,
        vc_number=vc_number,
        session_key=session_key,
        capabilities=words.u32le(),
        security_blob=data.read(blob_length),
        native_os=_read_string(message, data, unicode),
        native_lanman=_read_string(message, data, unicode),
    )


def _plain_setup_request(
    message: bytes, header: Header, words: Reader, data: Reader
) -> SessionSetupRequest:
    """MS-CIFS §2.2.4.53.1, WordCount 13, from MaxBufferSize on."""
    unicode = bool(header.flags2 & Flags2.UNICODE)
    max_buffer, max_mpx, vc_number = words.u16le(), words.u16le(), words.u16le()
    session_key, oem_length, unicode_length = words.u32le(), words.u16le(), words.u16le()
    words.skip(4)
    return SessionSetupRequest(
        header=header,
        max_buffer_size=max_buffer,
        max_mpx_count=max_mpx,
        vc_number=vc_number,
        session_key=session_key,
        capabilities=words.u32le(),
        security_blob=None,
        oem_password=data.read(oem_length),
        unicode_password=data.read(unicode_length),
        account_name=_read_string(message, data, unicode),
        primary_domain=_read_string(message, data, unicode),
        native_os=_read_string(message, data, unicode),
        native_lanman=_read_string(message, data, unicode),
    )


def _write_string(writer: Writer, text: str, unicode: bool) -> None:
    if unicode:
        writer.pad_to(2)
        writer.write(text.encode("utf-16-le") + b"\x00\x00")
    else:
        writer.write(text.encode("latin-1", errors="replace") + b"\x00")


def _finish(writer: Writer, byte_count_at: int) -> bytes:
    """Patch ByteCount (2 bytes at ``byte_count_at``) and return the message."""
    count = len(writer) - byte_count_at - 2
    writer.buf[byte_count_at : byte_count_at + 2] = count.to_bytes(2, "little")
    return writer.getvalue()


def encode_negotiate_response(response: NegotiateResponse) -> bytes:
    """Encode an NT LM 0.12 NEGOTIATE response (WordCount 17).

    With ``server_guid`` set it is the extended form (ServerGUID + SPNEGO blob,
    ChallengeLength 0); without, the challenge form with DomainName and
    ServerName in UTF-16LE, not padded (MS-CIFS §2.2.4.52.2).

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    writer = Writer()
    _write_header(writer, response.header)
    writer.u8(17)
    writer.u16le(response.dialect_index)
    writer.u8(response.security_mode)
    writer.u16le(response.max_mpx_count)
    writer.u16le(response.max_number_vcs)
    for value in (response.max_buffer_size, response.max_raw_size, response.session_key):
        writer.u32le(value)
    writer.u32le(response.capabilities)
    writer.u64le(response.system_time)
    writer.u16le(response.server_time_zone & 0xFFFF)
    extended = response.server_guid is not None
    writer.u8(0 if extended else len(response.challenge))
    at = len(writer)
    writer.u16le(0)
    if response.server_guid is not None:
        writer.write(response.server_guid + response.security_blob)
    else:
        writer.write(response.challenge)
        for name in (response.domain_name, response.server_name):
            writer.write(name.encode("utf-16-le") + b"\x00\x00")
    return _finish(writer, at)


def decode_negotiate_response(message: bytes) -> NegotiateResponse:
    """Decode an NT LM 0.12 NEGOTIATE response (the inverse of the encoder).

    Raises:
        MalformedMessage: bad header, WordCount not 17, short data block.
    """
    header, words, data = _blocks(message, Command.NEGOTIATE)
    if words.remaining != 34:
        raise Unsupported(PROTOCOL, HEADER_SIZE, "NEGOTIATE response WordCount is not 17")
    # Keyword arguments are evaluated left to right: these are the words in wire order.
    fixed = NegotiateResponse(
        header=header,
        dialect_index=words.u16le(),
        security_mode=words.u8(),
        max_mpx_count=words.u16le(),
        max_number_vcs=words.u16le(),
        max_buffer_size=words.u32le(),
        max_raw_size=words.u32le(),
        session_key=words.u32le(),
        capabilities=Capabilities(words.u32le()),
        system_time=words.u64le(),
        server_time_zone=_signed16(words.u16le()),
    )
    challenge_length = words.u8()
    if fixed.capabilities & Capabilities.EXTENDED_SECURITY:
        return replace(fixed, server_guid=data.read(16), security_blob=data.rest())
    challenge = data.read(challenge_length)
    domain = _read_string(message, data, True, align=False)
    server = _read_string(message, data, True, align=False)
    data.expect_end()
    return replace(fixed, challenge=challenge, domain_name=domain, server_name=server)


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def encode_plain_session_setup_response(response: SessionSetupResponse) -> bytes:
    """Encode a SESSION_SETUP_ANDX response without extended security (WordCount 3).

    MS-CIFS §2.2.4.53.2: Action, then NativeOS, NativeLanMan, PrimaryDomain;
    ``security_blob`` must be empty.

    Raises:
        ValueError: ``security_blob`` is not empty (a caller bug).
    """
    if response.security_blob:
        raise ValueError("the WordCount 3 response carries no security blob")
    unicode = bool(response.header.flags2 & Flags2.UNICODE)
    writer = Writer()
    _write_header(writer, response.header)
    writer.write(b"\x03\xff\x00\x00\x00")
    writer.u16le(response.action)
    at = len(writer)
    writer.u16le(0)
    for text in (response.native_os, response.native_lanman, response.primary_domain):
        _write_string(writer, text, unicode)
    return _finish(writer, at)


def decode_plain_session_setup_response(message: bytes) -> SessionSetupResponse:
    """Decode a SESSION_SETUP_ANDX response without extended security (WordCount 3).

    Raises:
        MalformedMessage: bad header or a WordCount other than 3.
    """
    header, words, data = _blocks(message, Command.SESSION_SETUP_ANDX)
    if words.remaining != 6:
        raise Unsupported(PROTOCOL, HEADER_SIZE, "SESSION_SETUP_ANDX response WordCount not 3")
    words.skip(4)
    action = words.u16le()
    unicode = bool(header.flags2 & Flags2.UNICODE)
    strings = [_read_string(message, data, unicode) for _ in range(3)]
    return SessionSetupResponse(header, action, b"", *strings)


def encode_session_setup_response(response: SessionSetupResponse) -> bytes:
    """Encode an extended-security SESSION_SETUP_ANDX response (WordCount 4).

    Strings are UTF-16LE when the header's FLAGS2_UNICODE is set.

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    unicode = bool(response.header.flags2 & Flags2.UNICODE)
    writer = Writer()
    _write_header(writer, response.header)
    writer.u8(4)
    writer.u8(Command.NO_ANDX_COMMAND)
    writer.u8(0)
    writer.u16le(0)
    writer.u16le(response.action)
    writer.u16le(len(response.security_blob))
    at = len(writer)
    writer.u16le(0)
    writer.write(response.security_blob)
    _write_string(writer, response.native_os, unicode)
    _write_string(writer, response.native_lanman, unicode)
    _write_string(writer, response.primary_domain, unicode)
    return _finish(writer, at)


def decode_session_setup_response(message: bytes) -> SessionSetupResponse:
    """Decode an extended-security SESSION_SETUP_ANDX response.

    Raises:
        MalformedMessage: bad header, WordCount not 4, blob outside ByteCount.
    """
    header, words, data = _blocks(message, Command.SESSION_SETUP_ANDX)
    if words.remaining != 8:
        raise Unsupported(PROTOCOL, HEADER_SIZE, "SESSION_SETUP_ANDX response WordCount not 4")
    words.skip(4)
    action, blob_length = words.u16le(), words.u16le()
    blob = data.read(blob_length)
    unicode = bool(header.flags2 & Flags2.UNICODE)
    strings = [_read_string(message, data, unicode) for _ in range(3)]
    return SessionSetupResponse(header, action, blob, *strings)


def encode_error_response(header: Header) -> bytes:
    """A response carrying only ``header.status``: WordCount 0, ByteCount 0."""
    writer = Writer()
    _write_header(writer, header)
    writer.write(b"\x00\x00\x00")
    return writer.getvalue()


def decode_echo_request(message: bytes) -> EchoRequest:
    """Decode SMB_COM_ECHO (header included).

    Raises:
        MalformedMessage: bad header, WordCount not 1, or data outside ByteCount.
    """
    header, words, data = _blocks(message, Command.ECHO)
    if words.remaining != 2:
        raise Unsupported(PROTOCOL, HEADER_SIZE, "ECHO WordCount is not 1")
    return EchoRequest(header, words.u16le(), data.rest())


def encode_echo_request(request: EchoRequest) -> bytes:
    """Encode SMB_COM_ECHO (for tests and probes)."""
    writer = Writer()
    _write_header(writer, request.header)
    writer.u8(1)
    writer.u16le(request.echo_count)
    writer.u16le(len(request.data))
    writer.write(request.data)
    return writer.getvalue()


def encode_echo_response(header: Header, sequence_number: int, data: bytes) -> bytes:
    """One SMB_COM_ECHO response: WordCount 1 (SequenceNumber), the echoed data.

    Raises:
        struct.error: ``data`` longer than 65535 bytes (a caller bug).
    """
    writer = Writer()
    _write_header(writer, header)
    writer.u8(1)
    writer.u16le(sequence_number)
    writer.u16le(len(data))
    writer.write(data)
    return writer.getvalue()


def encode_logoff_response(header: Header) -> bytes:
    """SMB_COM_LOGOFF_ANDX response: WordCount 2 (no AndX follows), ByteCount 0."""
    writer = Writer()
    _write_header(writer, header)
    writer.write(b"\x02\xff\x00\x00\x00\x00\x00")
    return writer.getvalue()
