"""Bounded byte reader and writer shared by every codec.

Every read checks the remaining length first, so an over-read becomes
:class:`~protocols.errors.Truncated` (a :class:`MalformedMessage`) and never an
``IndexError`` or ``struct.error``. :meth:`Reader.restrict` hands out a
sub-reader over a length-prefixed region that must be consumed exactly (the
idea of dnspython's ``Parser.restrict_to``).

Big-endian reads (``u16``/``u32``) serve DNS, NBNS and NBSS; little-endian
reads (``u16le``/``u32le``/``u64le``) serve SMB and NTLMSSP.
"""

from __future__ import annotations

import struct

from protocols.errors import TrailingBytes, Truncated

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U16LE = struct.Struct("<H")
_U32LE = struct.Struct("<I")
_U64LE = struct.Struct("<Q")


class Reader:
    """A cursor over ``data[start:end]`` that refuses to read past ``end``."""

    __slots__ = ("data", "end", "offset", "protocol")

    def __init__(
        self, data: bytes, protocol: str, *, start: int = 0, end: int | None = None
    ) -> None:
        self.data = data
        self.protocol = protocol
        self.offset = start
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.offset

    def _need(self, count: int) -> int:
        """Reserve ``count`` bytes and return their start offset."""
        start = self.offset
        if count < 0 or start + count > self.end:
            raise Truncated(self.protocol, start, f"need {count} bytes, have {self.end - start}")
        self.offset = start + count
        return start

    def u8(self) -> int:
        return self.data[self._need(1)]

    def u16(self) -> int:
        return int(_U16.unpack_from(self.data, self._need(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self.data, self._need(4))[0])

    def u16le(self) -> int:
        return int(_U16LE.unpack_from(self.data, self._need(2))[0])

    def u32le(self) -> int:
        return int(_U32LE.unpack_from(self.data, self._need(4))[0])

    def u64le(self) -> int:
        return int(_U64LE.unpack_from(self.data, self._need(8))[0])

    def read(self, count: int) -> bytes:
        start = self._need(count)
        return self.data[start : start + count]

    def skip(self, count: int) -> None:
        self._need(count)

    def rest(self) -> bytes:
        return self.read(self.remaining)

    def restrict(self, count: int) -> Reader:
        """Consume ``count`` bytes and return a reader limited to them."""
        start = self._need(count)
        return Reader(self.data, self.protocol, start=start, end=start + count)

    def expect_end(self) -> None:
        """Raise :class:`TrailingBytes` unless everything was consumed."""
        if self.offset != self.end:
            raise TrailingBytes(self.protocol, self.offset, f"{self.remaining} unexpected bytes")


def slice_checked(data: bytes, offset: int, length: int, protocol: str) -> bytes:
    """Return ``data[offset:offset+length]`` or raise if it leaves the buffer.

    For the offset/length pairs of SMB and NTLMSSP, which point anywhere.
    """
    if offset < 0 or length < 0 or offset + length > len(data):
        raise Truncated(protocol, offset, f"field [{offset}, +{length}) outside {len(data)} bytes")
    return data[offset : offset + length]


class Writer:
    """Append-only byte builder with the same integer vocabulary as Reader."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def __len__(self) -> int:
        return len(self.buf)

    def u8(self, value: int) -> None:
        self.buf.append(value)

    def u16(self, value: int) -> None:
        self.buf += _U16.pack(value)

    def u32(self, value: int) -> None:
        self.buf += _U32.pack(value)

    def u16le(self, value: int) -> None:
        self.buf += _U16LE.pack(value)

    def u32le(self, value: int) -> None:
        self.buf += _U32LE.pack(value)

    def u64le(self, value: int) -> None:
        self.buf += _U64LE.pack(value)

    def write(self, data: bytes) -> None:
        self.buf += data

    def pad_to(self, alignment: int) -> None:
        """Append zero bytes until the length is a multiple of ``alignment``."""
        self.buf += bytes(-len(self.buf) % alignment)

    def getvalue(self) -> bytes:
        return bytes(self.buf)
