"""NetBIOS session service framing (RFC 1002 §4.3) and direct TCP framing.

Theory of operation
-------------------
On TCP 139 every byte travels inside an NBSS packet (RFC 1002 §4.3.1): a
4-byte header of TYPE (1 byte), FLAGS (1 byte, bit 0 is the length extension
``E``) and a 16-bit big-endian LENGTH, so lengths reach 17 bits.  The TYPE says
what the payload is (§4.3.2-§4.3.7): SESSION MESSAGE carries SMB, SESSION
REQUEST opens the session with two first-level encoded NetBIOS names (called,
calling; RFC 1001 §14.1, coded by :mod:`protocols.netbios.names`, no compression),
and the server answers POSITIVE or NEGATIVE (with an error code) or RETARGET;
KEEP ALIVE may appear at any time.

On TCP 445 ("direct hosting", MS-SMB2 §2.1) the same 4-byte header holds a zero
byte and a 24-bit length, and only session messages exist.

:class:`Framer` cuts a byte stream into frames.  It keeps one buffer and an
offset into it (the idea of h11's receive buffer) so a frame split across
segments is read exactly once and several frames in one segment come out one
by one.  A frame whose announced length exceeds ``max_message_size`` raises
:class:`MalformedMessage` with no ``answer_hint``: the caller must drop the
connection, as there is no way to resynchronise a stream.  The
error's ``offset`` is the position in the stream (every byte ever fed counts),
so the same bad stream reports the same offset however it was segmented.

Cost: each :meth:`Framer.next_frame` reads one 4-byte header and copies one
payload; the caller decides how many frames it takes per segment
(:class:`~protocols.smb.session.SmbSession` takes a batch, then asks
:attr:`Framer.ready`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from protocols._wire import Reader
from protocols.errors import MalformedMessage, TrailingBytes, Unsupported
from protocols.netbios.names import NetbiosName, decode_netbios_name, encode_netbios_name

PROTOCOL: Final = "nbss"
HEADER_SIZE: Final = 4
_MAX_NBSS_LENGTH: Final = 0x1FFFF
_MAX_DIRECT_LENGTH: Final = 0xFFFFFF


class FrameType(enum.IntEnum):
    """RFC 1002 §4.3.1 packet types."""

    SESSION_MESSAGE = 0x00
    SESSION_REQUEST = 0x81
    POSITIVE_RESPONSE = 0x82
    NEGATIVE_RESPONSE = 0x83
    RETARGET_RESPONSE = 0x84
    KEEP_ALIVE = 0x85


class NegativeCode(enum.IntEnum):
    """RFC 1002 §4.3.4 NEGATIVE SESSION RESPONSE error codes."""

    NOT_LISTENING_ON_CALLED_NAME = 0x80
    NOT_LISTENING_FOR_CALLING_NAME = 0x81
    CALLED_NAME_NOT_PRESENT = 0x82
    INSUFFICIENT_RESOURCES = 0x83
    UNSPECIFIED = 0x8F


@dataclass(frozen=True, slots=True)
class Frame:
    """One framed unit: its type and the payload after the 4-byte header."""

    type: FrameType
    payload: bytes


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """RFC 1002 §4.3.2 SESSION REQUEST payload."""

    called: NetbiosName
    calling: NetbiosName


def _error(offset: int, reason: str) -> MalformedMessage:
    return MalformedMessage(PROTOCOL, offset, reason)  # no answer_hint: close the stream


class Framer:
    """Cuts a TCP byte stream into :class:`Frame` objects.

    ``direct=True`` reads the TCP 445 header (zero byte, 24-bit length),
    ``direct=False`` the RFC 1002 header.  Call :meth:`feed` with each segment
    and :meth:`next_frame` until it returns ``None``.
    """

    __slots__ = ("_buf", "_direct", "_dropped", "_failed", "_start", "max_message_size")

    def __init__(self, *, direct: bool, max_message_size: int = 65536) -> None:
        self._buf = bytearray()
        self._start = 0
        self._dropped = 0  # stream bytes compacted out of _buf
        self._direct = direct
        self._failed: MalformedMessage | None = None
        self.max_message_size = max_message_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._start

    @property
    def ready(self) -> bool:
        """True when :meth:`next_frame` has a frame (or a framing error) to give."""
        if self._failed is not None:
            return True
        if self.buffered < HEADER_SIZE:
            return False
        try:
            _frame_type, length = self._parse_header()
        except MalformedMessage:
            return True
        return self._start + HEADER_SIZE + length <= len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._start and self._start * 2 >= len(self._buf):
            del self._buf[: self._start]
            self._dropped += self._start
            self._start = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` if more bytes are needed.

        Raises:
            MalformedMessage: unknown type, reserved flag bits, or a length over
                ``max_message_size`` (no ``answer_hint``: close), its
                ``offset`` the header's position in the stream.  Once raised,
                every later call raises the same error.
        """
        if self._failed is not None:
            raise self._failed
        if self.buffered < HEADER_SIZE:
            return None
        try:
            frame_type, length = self._parse_header()
        except MalformedMessage as exc:
            self._failed = exc
            raise
        end = self._start + HEADER_SIZE + length
        if end > len(self._buf):
            return None
        payload = bytes(self._buf[self._start + HEADER_SIZE : end])
        self._start = end
        return Frame(frame_type, payload)

    def _parse_header(self) -> tuple[FrameType, int]:
        b0, b1, b2, b3 = self._buf[self._start : self._start + HEADER_SIZE]
        at = self._dropped + self._start  # the header's position in the stream
        if self._direct:
            if b0 != 0:
                raise _error(at, f"direct TCP frame type {b0:#04x} is not 0")
            frame_type, length = FrameType.SESSION_MESSAGE, (b1 << 16) | (b2 << 8) | b3
        else:
            if b0 not in FrameType._value2member_map_:
                raise _error(at, f"unknown NBSS type {b0:#04x}")
            if b1 & 0xFE:
                raise _error(at + 1, f"reserved NBSS flag bits {b1:#04x}")
            frame_type, length = FrameType(b0), ((b1 & 1) << 16) | (b2 << 8) | b3
        if length > self.max_message_size:
            raise _error(at, f"frame of {length} bytes exceeds {self.max_message_size}")
        return frame_type, length


def encode_frame(frame_type: FrameType, payload: bytes, *, direct: bool) -> bytes:
    """Prefix ``payload`` with the 4-byte NBSS or direct TCP header.

    Raises:
        ValueError: the payload is too long for the header, or ``direct`` with a
            type other than SESSION MESSAGE (a caller bug, not hostile input).
    """
    length = len(payload)
    if direct:
        if frame_type != FrameType.SESSION_MESSAGE or length > _MAX_DIRECT_LENGTH:
            raise ValueError("direct TCP carries only session messages below 16 MiB")
        return bytes((0, length >> 16, (length >> 8) & 0xFF, length & 0xFF)) + payload
    if length > _MAX_NBSS_LENGTH:
        raise ValueError(f"NBSS payload of {length} bytes exceeds 17 bits")
    return bytes((frame_type, length >> 16, (length >> 8) & 0xFF, length & 0xFF)) + payload


def encode_positive_response() -> bytes:
    """RFC 1002 §4.3.3 POSITIVE SESSION RESPONSE, header included."""
    return encode_frame(FrameType.POSITIVE_RESPONSE, b"", direct=False)


def encode_negative_response(code: NegativeCode) -> bytes:
    """RFC 1002 §4.3.4 NEGATIVE SESSION RESPONSE, header included."""
    return encode_frame(FrameType.NEGATIVE_RESPONSE, bytes((code,)), direct=False)


def encode_keep_alive() -> bytes:
    """RFC 1002 §4.3.7 SESSION KEEP ALIVE, header included."""
    return encode_frame(FrameType.KEEP_ALIVE, b"", direct=False)


def decode_negative_response(payload: bytes) -> NegativeCode:
    """Decode the one-byte payload of a NEGATIVE SESSION RESPONSE.

    Raises:
        MalformedMessage: wrong length (Truncated / TrailingBytes) or an unknown
            code (Unsupported).
    """
    reader = Reader(payload, PROTOCOL)
    code = reader.u8()
    reader.expect_end()
    if code not in NegativeCode._value2member_map_:
        raise Unsupported(PROTOCOL, 0, f"unknown negative session code {code:#04x}")
    return NegativeCode(code)


def encode_session_request(request: SessionRequest) -> bytes:
    """RFC 1002 §4.3.2 SESSION REQUEST, header included.

    Raises:
        ValueError: a name too long on the wire (a caller bug).
    """
    payload = encode_netbios_name(request.called) + encode_netbios_name(request.calling)
    return encode_frame(FrameType.SESSION_REQUEST, payload, direct=False)


def decode_session_request(payload: bytes) -> SessionRequest:
    """Decode the payload of a SESSION REQUEST (two encoded names).

    Raises:
        MalformedMessage: a name that is not 32 half-ASCII characters, a bad
            scope label, a compression pointer, or bytes after the names.
    """
    called, offset = decode_netbios_name(payload, 0, protocol=PROTOCOL)
    calling, offset = decode_netbios_name(payload, offset, protocol=PROTOCOL)
    if offset != len(payload):
        raise TrailingBytes(PROTOCOL, offset, f"{len(payload) - offset} bytes after the names")
    return SessionRequest(called, calling)
