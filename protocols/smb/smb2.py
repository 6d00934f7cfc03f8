"""SMB2/3 header, SESSION_SETUP, ECHO and ERROR messages (MS-SMB2).

Theory of operation
-------------------
Every SMB2 message starts with the 64-byte sync header of MS-SMB2 §2.2.1.2:
ProtocolId ``FE 'SMB'``, StructureSize 64, CreditCharge, Status (ChannelSequence
in requests), Command, CreditRequest/CreditResponse, Flags, NextCommand,
MessageId, Reserved (process id), TreeId, SessionId and a 16-byte Signature.
With ``SMB2_FLAGS_ASYNC_COMMAND`` the Reserved/TreeId pair is the AsyncId
(§2.2.1.1); we keep the two 32-bit halves as they are.

The body follows with its own fixed StructureSize.  Offsets inside bodies
(SecurityBufferOffset, NegotiateContextOffset) count from the first byte of the
header, so decoders here take the whole message and check every offset and
length against it.

Covered bodies: SESSION_SETUP request/response (§2.2.5, §2.2.6), LOGOFF
response (§2.2.8), ECHO response (§2.2.29) and the ERROR response (§2.2.2).  NEGOTIATE lives in
:mod:`protocols.smb.negotiate`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from protocols._wire import Reader, Writer, slice_checked
from protocols.errors import MalformedMessage, Unsupported

PROTOCOL: Final = "smb2"
PROTOCOL_ID: Final = b"\xfeSMB"
HEADER_SIZE: Final = 64


class Command(enum.IntEnum):
    """MS-SMB2 §2.2.1.2 command codes."""

    NEGOTIATE = 0x0000
    SESSION_SETUP = 0x0001
    LOGOFF = 0x0002
    TREE_CONNECT = 0x0003
    TREE_DISCONNECT = 0x0004
    CREATE = 0x0005
    CLOSE = 0x0006
    FLUSH = 0x0007
    READ = 0x0008
    WRITE = 0x0009
    LOCK = 0x000A
    IOCTL = 0x000B
    CANCEL = 0x000C
    ECHO = 0x000D
    QUERY_DIRECTORY = 0x000E
    CHANGE_NOTIFY = 0x000F
    QUERY_INFO = 0x0010
    SET_INFO = 0x0011
    OPLOCK_BREAK = 0x0012


class HeaderFlags(enum.IntFlag):
    """MS-SMB2 §2.2.1.2 Flags."""

    SERVER_TO_REDIR = 0x00000001
    ASYNC_COMMAND = 0x00000002
    RELATED_OPERATIONS = 0x00000004
    SIGNED = 0x00000008
    PRIORITY_MASK = 0x00000070
    DFS_OPERATIONS = 0x10000000
    REPLAY_OPERATION = 0x20000000


class SecurityMode(enum.IntFlag):
    """MS-SMB2 §2.2.3 / §2.2.4 SecurityMode."""

    SIGNING_ENABLED = 0x0001
    SIGNING_REQUIRED = 0x0002


class SessionFlags(enum.IntFlag):
    """MS-SMB2 §2.2.6 SessionFlags."""

    IS_GUEST = 0x0001
    IS_NULL = 0x0002
    ENCRYPT_DATA = 0x0004


@dataclass(frozen=True, slots=True)
class Header:
    """MS-SMB2 §2.2.1.2 sync header (AsyncId kept as ``process_id``/``tree_id``)."""

    command: int
    status: int = 0
    credit_charge: int = 0
    credits: int = 0
    flags: int = 0
    next_command: int = 0
    message_id: int = 0
    process_id: int = 0
    tree_id: int = 0
    session_id: int = 0
    signature: bytes = bytes(16)


@dataclass(frozen=True, slots=True)
class SessionSetupRequest:
    """MS-SMB2 §2.2.5."""

    header: Header
    flags: int
    security_mode: int
    capabilities: int
    channel: int
    previous_session_id: int
    security_buffer: bytes


@dataclass(frozen=True, slots=True)
class SessionSetupResponse:
    """MS-SMB2 §2.2.6."""

    header: Header
    session_flags: SessionFlags
    security_buffer: bytes


def decode_header(message: bytes) -> Header:
    """Decode the 64-byte header at the start of ``message``.

    Raises:
        MalformedMessage: short message (Truncated), wrong ProtocolId or
            StructureSize.
    """
    reader = Reader(message, PROTOCOL)
    if reader.read(4) != PROTOCOL_ID:
        raise MalformedMessage(PROTOCOL, 0, "ProtocolId is not FE 'SMB'")
    if reader.u16le() != HEADER_SIZE:
        raise MalformedMessage(PROTOCOL, 4, "header StructureSize is not 64")
    # Keyword arguments are evaluated left to right: these are the fields in wire order.
    return Header(
        credit_charge=reader.u16le(),
        status=reader.u32le(),
        command=reader.u16le(),
        credits=reader.u16le(),
        flags=reader.u32le(),
        next_command=reader.u32le(),
        message_id=reader.u64le(),
        process_id=reader.u32le(),
        tree_id=reader.u32le(),
        session_id=reader.u64le(),
        signature=reader.read(16),
    )


def encode_header(header: Header) -> bytes:
    """Encode a 64-byte header.

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    writer = Writer()
    writer.write(PROTOCOL_ID)
    writer.u16le(HEADER_SIZE)
    writer.u16le(header.credit_charge)
    writer.u32le(header.status)
    writer.u16le(header.command)
    writer.u16le(header.credits)
    writer.u32le(header.flags)
    writer.u32le(header.next_command)
    writer.u64le(header.message_id)
    writer.u32le(header.process_id)
    writer.u32le(header.tree_id)
    writer.u64le(header.session_id)
    writer.write(header.signature)
    return writer.getvalue()


def body_reader(message: bytes, structure_size: int) -> Reader:
    """Return a reader positioned after the header and a checked StructureSize.

    Raises:
        MalformedMessage: the body's StructureSize differs from ``structure_size``.
    """
    reader = Reader(message, PROTOCOL, start=HEADER_SIZE)
    found = reader.u16le()
    if found != structure_size:
        raise MalformedMessage(
            PROTOCOL, HEADER_SIZE, f"StructureSize {found}, expected {structure_size}"
        )
    return reader


def security_buffer(message: bytes, offset: int, length: int, fixed_end: int) -> bytes:
    """Slice a security buffer, refusing offsets into the header or fixed body.

    Raises:
        MalformedMessage: the buffer overlaps the fixed part or leaves the message.
    """
    if length == 0:
        return b""
    if offset < fixed_end:
        raise MalformedMessage(PROTOCOL, offset, "security buffer overlaps the fixed part")
    return slice_checked(message, offset, length, PROTOCOL)


def decode_session_setup_request(message: bytes) -> SessionSetupRequest:
    """Decode an SMB2 SESSION_SETUP request (header included).

    Raises:
        MalformedMessage: bad header, StructureSize not 25, or a security buffer
            outside the message.
    """
    header = decode_header(message)
    _expect_command(header, Command.SESSION_SETUP)
    reader = body_reader(message, 25)
    flags, security_mode = reader.u8(), reader.u8()
    capabilities, channel = reader.u32le(), reader.u32le()
    offset, length = reader.u16le(), reader.u16le()
    previous = reader.u64le()
    blob = security_buffer(message, offset, length, reader.offset)
    return SessionSetupRequest(header, flags, security_mode, capabilities, channel, previous, blob)


def encode_session_setup_request(request: SessionSetupRequest) -> bytes:
    """Encode an SMB2 SESSION_SETUP request (for tests and probes).

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    writer = Writer()
    writer.u16le(25)
    writer.u8(request.flags)
    writer.u8(request.security_mode)
    writer.u32le(request.capabilities)
    writer.u32le(request.channel)
    writer.u16le(HEADER_SIZE + 24 if request.security_buffer else 0)
    writer.u16le(len(request.security_buffer))
    writer.u64le(request.previous_session_id)
    writer.write(request.security_buffer)
    return encode_header(request.header) + writer.getvalue()


def encode_session_setup_response(response: SessionSetupResponse) -> bytes:
    """Encode an SMB2 SESSION_SETUP response (header included).

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    writer = Writer()
    writer.u16le(9)
    writer.u16le(response.session_flags)
    writer.u16le(HEADER_SIZE + 8)
    writer.u16le(len(response.security_buffer))
    writer.write(response.security_buffer)
    return encode_header(response.header) + writer.getvalue()


def decode_session_setup_response(message: bytes) -> SessionSetupResponse:
    """Decode an SMB2 SESSION_SETUP response (header included).

    Raises:
        MalformedMessage: bad header, StructureSize not 9, or a buffer outside.
    """
    header = decode_header(message)
    _expect_command(header, Command.SESSION_SETUP)
    reader = body_reader(message, 9)
    flags, offset, length = reader.u16le(), reader.u16le(), reader.u16le()
    blob = security_buffer(message, offset, length, reader.offset)
    return SessionSetupResponse(header, SessionFlags(flags), blob)


def encode_error_response(header: Header) -> bytes:
    """MS-SMB2 §2.2.2 ERROR response: StructureSize 9, no error data.

    ByteCount is 0, and the one ErrorData byte the structure size implies is
    sent as zero, as Windows does.
    """
    return encode_header(header) + b"\x09\x00\x00\x00\x00\x00\x00\x00\x00"


def encode_echo_response(header: Header) -> bytes:
    """MS-SMB2 §2.2.29 ECHO response: StructureSize 4, Reserved."""
    return encode_header(header) + b"\x04\x00\x00\x00"


def encode_logoff_response(header: Header) -> bytes:
    """MS-SMB2 §2.2.8 LOGOFF response: StructureSize 4, Reserved."""
    return encode_header(header) + b"\x04\x00\x00\x00"


def _expect_command(header: Header, command: Command) -> None:
    if header.command != command:
        raise Unsupported(PROTOCOL, 12, f"command {header.command:#06x}, expected {command.name}")
