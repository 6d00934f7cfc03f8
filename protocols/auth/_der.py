"""A minimal, bounded DER/BER reader and writer for SPNEGO tokens.

Theory of operation (ITU-T X.690 §8.1 identifier and length octets, §10.1
definite form in DER; RFC 2743 §3.1 token framing; RFC 4178 §4.2):

- An element is a TLV: one identifier octet (class, constructed bit, tag
  number below 31; the multi-octet "high tag number" form is refused), length
  octets, then content. Only the definite length form is accepted: short form
  (0..127) or long form with at most four length octets. A length larger than
  what remains of the enclosing element raises :class:`Truncated`.
- :class:`DerReader` walks one constructed element's content. ``enter`` opens a
  nested constructed element and counts depth; past :data:`MAX_DEPTH` levels
  the input is refused, so hostile nesting costs bounded work.
- OBJECT IDENTIFIERs (X.690 §8.19) are read and written as dotted strings. Each
  sub-identifier must be minimally encoded and fit in 63 bits, and the whole
  content is at most :data:`MAX_OID_OCTETS` octets (X.690 sets no limit; the
  mechanism OIDs SPNEGO carries take 6 to 10), so reading one is a bounded
  loop: 64 KiB of one-octet arcs is refused, not turned into 65,000 numbers.
- The writer (:func:`tlv`) always emits the shortest length form, so what we
  send is DER even when what we accept is the slightly wider BER subset above.
"""

from __future__ import annotations

from protocols._wire import Reader
from protocols.errors import MalformedMessage, Truncated, Unsupported

MAX_DEPTH = 8
"""Most nested constructed elements a reader will enter (SPNEGO needs 6)."""

MAX_OID_OCTETS = 64
"""Longest OBJECT IDENTIFIER content a reader decodes."""

_MAX_LENGTH_OCTETS = 4
_MAX_ARC_OCTETS = 9  # 9 * 7 = 63 bits

TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_GENERAL_STRING = 0x1B
TAG_SEQUENCE = 0x30
TAG_APPLICATION_0 = 0x60


def context(number: int) -> int:
    """Identifier octet of the constructed context-specific tag ``[number]``."""
    return 0xA0 | number


class DerReader:
    """Reads the TLV elements inside one region, tracking nesting depth."""

    __slots__ = ("_reader", "depth")

    def __init__(self, reader: Reader, depth: int = 0) -> None:
        self._reader = reader
        self.depth = depth

    @classmethod
    def over(cls, data: bytes, protocol: str) -> DerReader:
        """A depth-0 reader over all of ``data``."""
        return cls(Reader(data, protocol))

    @property
    def offset(self) -> int:
        return self._reader.offset

    def at_end(self) -> bool:
        return self._reader.remaining == 0

    def read_tlv(self) -> tuple[int, Reader]:
        """Read one element; return its identifier octet and a content reader.

        Raises:
            Unsupported: high tag number form.
            MalformedMessage: indefinite length or more than four length octets.
            Truncated: the element runs past the end of the region.
        """
        start = self._reader.offset
        tag = self._reader.u8()
        if tag & 0x1F == 0x1F:
            raise Unsupported(self._reader.protocol, start, "high tag number form")
        length = self._read_length()
        if length > self._reader.remaining:
            raise Truncated(
                self._reader.protocol,
                self._reader.offset,
                f"element length {length} exceeds remaining {self._reader.remaining}",
            )
        return tag, self._reader.restrict(length)

    def _read_length(self) -> int:
        offset = self._reader.offset
        first = self._reader.u8()
        if first < 0x80:
            return first
        count = first & 0x7F
        if count == 0:
            raise MalformedMessage(self._reader.protocol, offset, "indefinite length")
        if count > _MAX_LENGTH_OCTETS:
            raise MalformedMessage(self._reader.protocol, offset, f"{count} length octets")
        return int.from_bytes(self._reader.read(count), "big")

    def expect(self, tag: int) -> Reader:
        """Read one element that must carry identifier ``tag``.

        Raises:
            MalformedMessage: another tag, or the region is empty (Truncated).
        """
        offset = self._reader.offset
        got, content = self.read_tlv()
        if got != tag:
            raise MalformedMessage(
                self._reader.protocol, offset, f"expected tag 0x{tag:02x}, got 0x{got:02x}"
            )
        return content

    def enter(self, tag: int) -> DerReader:
        """Open the constructed element ``tag`` and return a reader one level deeper.

        Raises:
            MalformedMessage: wrong tag, or nesting deeper than :data:`MAX_DEPTH`.
        """
        offset = self._reader.offset
        if self.depth >= MAX_DEPTH:
            raise MalformedMessage(self._reader.protocol, offset, "nesting too deep")
        return DerReader(self.expect(tag), self.depth + 1)

    def read_constructed(self) -> tuple[int, DerReader]:
        """Read any constructed element; return its tag and a reader one level deeper.

        Raises:
            MalformedMessage: a primitive element, or nesting past :data:`MAX_DEPTH`.
        """
        offset = self._reader.offset
        if self.depth >= MAX_DEPTH:
            raise MalformedMessage(self._reader.protocol, offset, "nesting too deep")
        tag, content = self.read_tlv()
        if not tag & 0x20:
            raise MalformedMessage(
                self._reader.protocol, offset, f"tag 0x{tag:02x} not constructed"
            )
        return tag, DerReader(content, self.depth + 1)

    def expect_end(self) -> None:
        """Raise :class:`~protocols.errors.TrailingBytes` if elements remain."""
        self._reader.expect_end()


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """Encode one element with the shortest definite length."""
    return bytes((tag,)) + _encode_length(len(content)) + content


def _encode_arc(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def encode_oid(oid: str) -> bytes:
    """Content octets of an OBJECT IDENTIFIER given as a dotted string.

    Raises:
        ValueError: not a valid dotted OID (a programming error, not hostile input).
    """
    parts = oid.split(".")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"not a dotted OID: {oid!r}")
    arcs = [int(p) for p in parts]
    if arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"invalid first arcs in OID: {oid!r}")
    first = arcs[0] * 40 + arcs[1]
    return b"".join(_encode_arc(a) for a in [first, *arcs[2:]])


def _split_arcs(data: bytes, protocol: str) -> list[int]:
    arcs: list[int] = []
    value = 0
    octets = 0
    for index, byte in enumerate(data):
        if octets == 0 and byte == 0x80:
            raise MalformedMessage(protocol, index, "non-minimal OID sub-identifier")
        octets += 1
        if octets > _MAX_ARC_OCTETS:
            raise Unsupported(protocol, index, "OID sub-identifier too large")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            octets = 0
    if octets:
        raise Truncated(protocol, len(data), "OID ends inside a sub-identifier")
    return arcs


def decode_oid(data: bytes, protocol: str = "der") -> str:
    """Dotted string of the OBJECT IDENTIFIER whose content octets are ``data``.

    Raises:
        MalformedMessage: empty, non-minimal, or cut inside a sub-identifier
            (Truncated); Unsupported for a sub-identifier wider than 63 bits
            or more than :data:`MAX_OID_OCTETS` octets.
    """
    if not data:
        raise MalformedMessage(protocol, 0, "empty OID")
    if len(data) > MAX_OID_OCTETS:
        raise Unsupported(protocol, 0, f"OID of {len(data)} octets, over {MAX_OID_OCTETS}")
    arcs = _split_arcs(data, protocol)
    first = arcs[0]
    head = [first // 40, first % 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in [*head, *arcs[1:]])
