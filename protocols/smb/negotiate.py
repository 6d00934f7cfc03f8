"""SMB2/3 NEGOTIATE request and response with negotiate contexts (MS-SMB2).

Theory of operation
-------------------
The client's NEGOTIATE request (MS-SMB2 §2.2.3) lists the dialects it speaks;
from SMB 3.1.1 on it appends negotiate contexts (§2.2.3.1) at
NegotiateContextOffset, counted from the header, each one 8-byte aligned:
ContextType, DataLength, 4 reserved bytes, then the data.  The server answers
(§2.2.4) with one DialectRevision, its GUID, capabilities, size limits, its
clock, a SPNEGO token in the security buffer and, for 3.1.1, its own contexts
(§2.2.4.1), again 8-byte aligned after the security buffer.

Choices made here (:func:`choose_dialect`, :func:`response_contexts`) follow
MS-SMB2 §3.3.5.4.  What a given Windows release claims (capabilities, sizes,
which contexts it answers) is data, in :mod:`protocols.smb.windows`.

Cost: at most :data:`MAX_DIALECTS` dialects and :data:`MAX_CONTEXTS`
contexts are read one by one; an algorithm list inside a context (up to
32,767 entries fit in 64 KiB) is unpacked in one ``struct`` call and made a
set once, so no Python loop runs per entry.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, replace
from typing import Final

from protocols._wire import Reader, Writer
from protocols.errors import MalformedMessage, Unsupported
from protocols.smb.ntstatus import NtStatus
from protocols.smb.smb2 import (
    HEADER_SIZE,
    PROTOCOL,
    Command,
    Header,
    SecurityMode,
    body_reader,
    decode_header,
    encode_header,
    security_buffer,
)

MAX_DIALECTS: Final = 64
MAX_CONTEXTS: Final = 32
_RESPONSE_FIXED: Final = HEADER_SIZE + 64


class Dialect(enum.IntEnum):
    """MS-SMB2 §2.2.3 dialect revisions."""

    SMB202 = 0x0202
    SMB210 = 0x0210
    SMB300 = 0x0300
    SMB302 = 0x0302
    SMB311 = 0x0311
    WILDCARD = 0x02FF


#: The dialects a server may choose, by the names operators and tools use for them.
DIALECT_NAMES: Final = {
    Dialect.SMB202: "2.0.2",
    Dialect.SMB210: "2.1",
    Dialect.SMB300: "3.0",
    Dialect.SMB302: "3.0.2",
    Dialect.SMB311: "3.1.1",
}


class Capabilities(enum.IntFlag):
    """MS-SMB2 §2.2.3 / §2.2.4 Capabilities."""

    DFS = 0x01
    LEASING = 0x02
    LARGE_MTU = 0x04
    MULTI_CHANNEL = 0x08
    PERSISTENT_HANDLES = 0x10
    DIRECTORY_LEASING = 0x20
    ENCRYPTION = 0x40


class ContextType(enum.IntEnum):
    """MS-SMB2 §2.2.3.1 negotiate context types."""

    PREAUTH_INTEGRITY_CAPABILITIES = 0x0001
    ENCRYPTION_CAPABILITIES = 0x0002
    COMPRESSION_CAPABILITIES = 0x0003
    NETNAME_NEGOTIATE_CONTEXT_ID = 0x0005
    TRANSPORT_CAPABILITIES = 0x0006
    RDMA_TRANSFORM_CAPABILITIES = 0x0007
    SIGNING_CAPABILITIES = 0x0008


class HashAlgorithm(enum.IntEnum):
    SHA_512 = 0x0001


class Cipher(enum.IntEnum):
    """MS-SMB2 §2.2.3.1.2."""

    NONE = 0x0000
    AES_128_CCM = 0x0001
    AES_128_GCM = 0x0002
    AES_256_CCM = 0x0003
    AES_256_GCM = 0x0004


class SigningAlgorithm(enum.IntEnum):
    """MS-SMB2 §2.2.3.1.7."""

    HMAC_SHA256 = 0x0000
    AES_CMAC = 0x0001
    AES_GMAC = 0x0002


#: Server preference, best first (Windows Server 2022 default order).
CIPHER_PREFERENCE: Final = (
    Cipher.AES_128_GCM,
    Cipher.AES_128_CCM,
    Cipher.AES_256_GCM,
    Cipher.AES_256_CCM,
)
SIGNING_PREFERENCE: Final = (
    SigningAlgorithm.AES_CMAC,
    SigningAlgorithm.HMAC_SHA256,
    SigningAlgorithm.AES_GMAC,
)


@dataclass(frozen=True, slots=True)
class NegotiateContext:
    """One §2.2.3.1 context: its type and raw data."""

    context_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NegotiateRequest:
    """MS-SMB2 §2.2.3 (ClientStartTime is kept as the raw 8 bytes' integer)."""

    header: Header
    dialects: tuple[int, ...]
    security_mode: int
    capabilities: int
    client_guid: bytes
    contexts: tuple[NegotiateContext, ...] = ()
    client_start_time: int = 0


@dataclass(frozen=True, slots=True)
class NegotiateResponse:
    """MS-SMB2 §2.2.4."""

    header: Header
    security_mode: SecurityMode
    dialect_revision: int
    server_guid: bytes
    capabilities: Capabilities
    max_transact_size: int
    max_read_size: int
    max_write_size: int
    system_time: int
    server_start_time: int
    security_buffer: bytes
    contexts: tuple[NegotiateContext, ...] = ()


def decode_negotiate_request(message: bytes) -> NegotiateRequest:
    """Decode an SMB2 NEGOTIATE request (header included).

    Contexts are read only when 0x0311 is among the dialects, as §3.3.5.4 says.

    Raises:
        MalformedMessage: bad header, StructureSize not 36, DialectCount 0 or
            above MAX_DIALECTS, dialects or contexts outside the message,
            misaligned or too many contexts.
    """
    header = decode_header(message)
    if header.command != Command.NEGOTIATE:
        raise Unsupported(PROTOCOL, 12, "not a NEGOTIATE request")
    reader = body_reader(message, 36)
    count = reader.u16le()
    if not 0 < count <= MAX_DIALECTS:
        raise MalformedMessage(PROTOCOL, HEADER_SIZE + 2, f"DialectCount {count}")
    security_mode, _reserved, capabilities = reader.u16le(), reader.u16le(), reader.u32le()
    client_guid = reader.read(16)
    start_time_reader = reader.restrict(8)
    dialects = tuple(reader.u16le() for _ in range(count))
    request = NegotiateRequest(
        header=header,
        dialects=dialects,
        security_mode=security_mode,
        capabilities=capabilities,
        client_guid=client_guid,
    )
    if Dialect.SMB311 not in dialects:
        return replace(request, client_start_time=start_time_reader.u64le())
    offset, context_count = start_time_reader.u32le(), start_time_reader.u16le()
    contexts = _decode_contexts(message, offset, context_count, reader.offset)
    return replace(request, contexts=contexts)


def _decode_contexts(
    message: bytes, offset: int, count: int, fixed_end: int
) -> tuple[NegotiateContext, ...]:
    if count == 0:
        return ()
    if count > MAX_CONTEXTS:
        raise MalformedMessage(PROTOCOL, offset, f"NegotiateContextCount {count}")
    if offset < fixed_end or offset % 8:
        raise MalformedMessage(PROTOCOL, offset, "bad NegotiateContextOffset")
    reader = Reader(message, PROTOCOL, start=offset)
    contexts = []
    for index in range(count):
        if index and reader.offset % 8:
            reader.skip(8 - reader.offset % 8)
        context_type, length = reader.u16le(), reader.u16le()
        reader.skip(4)
        contexts.append(NegotiateContext(context_type, reader.read(length)))
    return tuple(contexts)


def _encode_contexts(writer: Writer, contexts: tuple[NegotiateContext, ...]) -> None:
    for index, context in enumerate(contexts):
        if index:
            writer.pad_to(8)
        writer.u16le(context.context_type)
        writer.u16le(len(context.data))
        writer.u32le(0)
        writer.write(context.data)


def encode_negotiate_request(request: NegotiateRequest) -> bytes:
    """Encode an SMB2 NEGOTIATE request (for tests and probes).

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    body = Writer()
    body.write(encode_header(request.header))
    body.u16le(36)
    body.u16le(len(request.dialects))
    body.u16le(request.security_mode)
    body.u16le(0)
    body.u32le(request.capabilities)
    body.write(request.client_guid)
    has_contexts = Dialect.SMB311 in request.dialects
    context_offset = -(-(HEADER_SIZE + 36 + 2 * len(request.dialects)) // 8) * 8
    if has_contexts:
        body.u32le(context_offset if request.contexts else 0)
        body.u16le(len(request.contexts))
        body.u16le(0)
    else:
        body.u64le(request.client_start_time)
    for dialect in request.dialects:
        body.u16le(dialect)
    if has_contexts and request.contexts:
        body.pad_to(8)
        _encode_contexts(body, request.contexts)
    return body.getvalue()


def encode_negotiate_response(response: NegotiateResponse) -> bytes:
    """Encode an SMB2 NEGOTIATE response (header included).

    Contexts are written, 8-byte aligned after the security buffer, only when
    the dialect is 3.1.1.

    Raises:
        struct.error: a field does not fit its width (a caller bug).
    """
    with_contexts = response.dialect_revision == Dialect.SMB311 and bool(response.contexts)
    blob = response.security_buffer
    context_offset = -(-(_RESPONSE_FIXED + len(blob)) // 8) * 8 if with_contexts else 0
    writer = Writer()
    writer.write(encode_header(response.header))
    writer.u16le(65)
    writer.u16le(response.security_mode)
    writer.u16le(response.dialect_revision)
    writer.u16le(len(response.contexts) if with_contexts else 0)
    writer.write(response.server_guid)
    for value in (response.capabilities, response.max_transact_size):
        writer.u32le(value)
    writer.u32le(response.max_read_size)
    writer.u32le(response.max_write_size)
    writer.u64le(response.system_time)
    writer.u64le(response.server_start_time)
    writer.u16le(_RESPONSE_FIXED if blob else 0)
    writer.u16le(len(blob))
    writer.u32le(context_offset)
    writer.write(blob)
    if with_contexts:
        writer.pad_to(8)
        _encode_contexts(writer, response.contexts)
    return writer.getvalue()


def decode_negotiate_response(message: bytes) -> NegotiateResponse:
    """Decode an SMB2 NEGOTIATE response (header included).

    Raises:
        MalformedMessage: bad header, StructureSize not 65, buffers outside.
    """
    header = decode_header(message)
    reader = body_reader(message, 65)
    security_mode, dialect, context_count = reader.u16le(), reader.u16le(), reader.u16le()
    server_guid = reader.read(16)
    capabilities, transact, read, write = (reader.u32le() for _ in range(4))
    system_time, start_time = reader.u64le(), reader.u64le()
    offset, length, context_offset = reader.u16le(), reader.u16le(), reader.u32le()
    blob = security_buffer(message, offset, length, reader.offset)
    contexts: tuple[NegotiateContext, ...] = ()
    if dialect == Dialect.SMB311:
        contexts = _decode_contexts(message, context_offset, context_count, reader.offset)
    return NegotiateResponse(
        header=header,
        security_mode=SecurityMode(security_mode),
        dialect_revision=dialect,
        server_guid=server_guid,
        capabilities=Capabilities(capabilities),
        max_transact_size=transact,
        max_read_size=read,
        max_write_size=write,
        system_time=system_time,
        server_start_time=start_time,
        security_buffer=blob,
        contexts=contexts,
    )


def choose_dialect(offered: tuple[int, ...], max_dialect: int) -> int | None:
    """Return the highest known dialect in ``offered`` not above ``max_dialect``."""
    known = [d for d in offered if d in Dialect._value2member_map_ and d != Dialect.WILDCARD]
    allowed = [d for d in known if d <= max_dialect]
    return max(allowed) if allowed else None


def _u16_list(data: bytes, count_offset: int) -> tuple[int, ...]:
    """A count, ``count_offset`` bytes, then that many u16: read in one C call."""
    reader = Reader(data, PROTOCOL)
    count = reader.u16le()
    reader.skip(count_offset)
    start = reader.offset
    reader.skip(2 * count)
    return struct.unpack_from(f"<{count}H", data, start)


def context_values(request: NegotiateRequest, context_type: ContextType) -> tuple[int, ...] | None:
    """The algorithm list of the first context of ``context_type``, or None if absent.

    PREAUTH gives its hash algorithms, ENCRYPTION its ciphers, SIGNING its
    signing algorithms.

    Raises:
        MalformedMessage: the context data is shorter than its counts announce.
    """
    for context in request.contexts:
        if context.context_type == context_type:
            skip = 2 if context_type == ContextType.PREAUTH_INTEGRITY_CAPABILITIES else 0
            return _u16_list(context.data, skip)
    return None


def _pick(preference: tuple[int, ...], offered: tuple[int, ...], fallback: int) -> int:
    available = frozenset(offered)  # one pass, then a lookup per preference
    return next((p for p in preference if p in available), fallback)


#: The contexts answered when the caller does not say (every one this module builds).
ANSWERED_CONTEXTS: Final = frozenset(
    {
        ContextType.PREAUTH_INTEGRITY_CAPABILITIES,
        ContextType.ENCRYPTION_CAPABILITIES,
        ContextType.COMPRESSION_CAPABILITIES,
        ContextType.SIGNING_CAPABILITIES,
    }
)
#: Windows' compression algorithms (MS-SMB2 §2.2.3.1.3): LZNT1, LZ77, LZ77+Huffman, Pattern_V1.
COMPRESSION_SUPPORTED: Final = (0x0001, 0x0002, 0x0003, 0x0004)
_COMPRESSION_CHAINED: Final = 0x00000001


def response_contexts(
    request: NegotiateRequest, salt: bytes, answered: frozenset[int] = ANSWERED_CONTEXTS
) -> tuple[NegotiateContext, ...]:
    """Server contexts for a 3.1.1 response (§3.3.5.4).

    PREAUTH_INTEGRITY with SHA-512 and ``salt``, always; then, each only when
    the client sent it and its type is in ``answered``: ENCRYPTION with one
    cipher the client offered (``NONE`` if there is no common one), COMPRESSION
    with the common algorithms (§2.2.4.1.3; ``NONE`` if none) and SIGNING with
    one algorithm the client offered.

    Raises:
        MalformedMessage: a context's data is shorter than its counts announce.
        Unsupported: no PREAUTH context, or no SHA-512 in it (answer_hint gives
            the NTSTATUS to send).
    """
    hashes = context_values(request, ContextType.PREAUTH_INTEGRITY_CAPABILITIES)
    if hashes is None:
        hint = NtStatus.INVALID_PARAMETER
        raise Unsupported(PROTOCOL, 0, "3.1.1 without PREAUTH context", answer_hint=hint)
    if HashAlgorithm.SHA_512 not in hashes:
        hint = NtStatus.NO_PREAUTH_INTEGRITY_HASH_OVERLAP
        raise Unsupported(PROTOCOL, 0, "no SHA-512 preauth hash", answer_hint=hint)
    out = [NegotiateContext(ContextType.PREAUTH_INTEGRITY_CAPABILITIES, _preauth(salt))]
    ciphers = context_values(request, ContextType.ENCRYPTION_CAPABILITIES)
    if ciphers is not None and ContextType.ENCRYPTION_CAPABILITIES in answered:
        chosen = _pick(CIPHER_PREFERENCE, ciphers, Cipher.NONE)
        out.append(NegotiateContext(ContextType.ENCRYPTION_CAPABILITIES, _one(chosen)))
    if ContextType.COMPRESSION_CAPABILITIES in answered:
        out.extend(_compression(request))
    signing = context_values(request, ContextType.SIGNING_CAPABILITIES)
    if signing is not None and ContextType.SIGNING_CAPABILITIES in answered:
        chosen = _pick(SIGNING_PREFERENCE, signing, SigningAlgorithm.HMAC_SHA256)
        out.append(NegotiateContext(ContextType.SIGNING_CAPABILITIES, _one(chosen)))
    return tuple(out)


def _compression(request: NegotiateRequest) -> list[NegotiateContext]:
    """§3.3.5.4 / §2.2.4.1.3: the client's algorithms this server has, client's order."""
    wanted = ContextType.COMPRESSION_CAPABILITIES
    data = next((c.data for c in request.contexts if c.context_type == wanted), None)
    if data is None:
        return []
    offered = _u16_list(data, 6)  # Count, Padding, Flags, then the algorithms
    common = [a for a in offered if a in COMPRESSION_SUPPORTED]
    flags = Reader(data, PROTOCOL, start=4).u32le() & _COMPRESSION_CHAINED if common else 0
    writer = Writer()
    writer.u16le(len(common or [0]))
    writer.u16le(0)
    writer.u32le(flags)
    for algorithm in common or [0]:
        writer.u16le(algorithm)
    return [NegotiateContext(ContextType.COMPRESSION_CAPABILITIES, writer.getvalue())]


def _preauth(salt: bytes) -> bytes:
    writer = Writer()
    writer.u16le(1)
    writer.u16le(len(salt))
    writer.u16le(HashAlgorithm.SHA_512)
    writer.write(salt)
    return writer.getvalue()


def _one(value: int) -> bytes:
    return b"\x01\x00" + value.to_bytes(2, "little")
