"""NetBIOS names on the wire: the first-level encoding shared by NBNS and NBSS.

Theory of operation (RFC 1001 §14.1, RFC 1002 §4.1):

- A NetBIOS name is 16 bytes: up to 15 name characters padded with spaces,
  then a one-byte suffix (the "service type", e.g. ``<00>`` workstation,
  ``<20>`` file server). The wildcard name ``*`` is padded with NULs instead.
- First-level encoding splits each of the 16 bytes into two nibbles and adds
  ``ord('A')`` to each, giving 32 bytes in ``'A'..'P'``. The result is the first
  label of a DNS-style name; the NetBIOS scope (``corp.example``) follows as
  ordinary labels and a zero byte ends the name.
- NBNS responses may compress names with DNS pointers (RFC 1002 §4.1,
  RFC 1035 §4.1.4). :func:`decode_netbios_name` follows them only when asked,
  only backwards, and at most :data:`MAX_POINTER_HOPS` times. NBSS (called and
  calling names of a SESSION REQUEST, RFC 1002 §4.3.2) never compresses, which
  is the default.

Name characters are kept as Latin-1 text exactly as received: letter case is
the caller's business (NetBIOS compares names case-insensitively;
:meth:`NetbiosName.key` gives the comparison key). :meth:`NetbiosName.make`
builds the upper-cased form a node announces.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import MalformedMessage, PointerLoop, Truncated

PROTOCOL = "netbios"
NAME_LENGTH = 15
ENCODED_LENGTH = 32
MAX_WIRE_LENGTH = 255  # RFC 1002 §4.1 keeps the DNS limit for the whole name
MAX_POINTER_HOPS = 16
WILDCARD = "*"

_ASCII_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_A = ord("A")
# Each of the 256 byte values as its two first-level letters, and back.
_ENCODE_TABLE = [bytes((_A + (b >> 4), _A + (b & 0x0F))) for b in range(256)]
_DECODE_TABLE = {pair: b for b, pair in enumerate(_ENCODE_TABLE)}


def ascii_upper(text: str) -> str:
    """Upper-case the ASCII letters of ``text`` only (NetBIOS case folding)."""
    return text.encode("latin-1").translate(_ASCII_UPPER).decode("latin-1")


@dataclass(frozen=True, slots=True)
class NetbiosName:
    """A 16-byte NetBIOS name plus its scope (dot-separated, may be empty)."""

    name: str
    suffix: int = 0x00
    scope: str = ""

    def __post_init__(self) -> None:
        raw = self.name.encode("latin-1")  # raises for non Latin-1 text
        if not 0 < len(raw) <= NAME_LENGTH:
            raise ValueError(f"NetBIOS name must have 1..15 characters: {self.name!r}")
        if not 0 <= self.suffix <= 0xFF:
            raise ValueError(f"NetBIOS suffix out of range: {self.suffix}")
        for label in _scope_labels(self.scope):
            if not 0 < len(label) <= 63:
                raise ValueError(f"bad scope label in {self.scope!r}")

    @classmethod
    def make(cls, name: str, suffix: int = 0x00, scope: str = "") -> NetbiosName:
        """Build the upper-cased name a node announces (ASCII letters only)."""
        return cls(ascii_upper(name), suffix, scope)

    def key(self) -> tuple[str, int, str]:
        """Case-insensitive comparison key: (upper name, suffix, lower scope)."""
        return (ascii_upper(self.name), self.suffix, self.scope.lower())

    def padded(self) -> bytes:
        """The 15 name bytes as carried on the wire, before the suffix."""
        raw = self.name.encode("latin-1")
        fill = b"\x00" if self.name == WILDCARD else b" "
        return raw + fill * (NAME_LENGTH - len(raw))

    def __str__(self) -> str:
        scope = f".{self.scope}" if self.scope else ""
        return f"{self.name}<{self.suffix:02x}>{scope}"


def _scope_labels(scope: str) -> list[bytes]:
    return [label.encode("latin-1") for label in scope.split(".")] if scope else []


def encode_first_level(name: NetbiosName) -> bytes:
    """Return the 32 'A'..'P' bytes of ``name`` (no length byte, no scope)."""
    raw = name.padded() + bytes((name.suffix,))
    return b"".join(_ENCODE_TABLE[b] for b in raw)


def encode_netbios_name(name: NetbiosName) -> bytes:
    """Return the full wire form: length 32, encoded name, scope labels, zero.

    Raises:
        ValueError: the encoded name would exceed 255 bytes (a caller bug).
    """
    out = bytearray(b"\x20")
    out += encode_first_level(name)
    for label in _scope_labels(name.scope):
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_WIRE_LENGTH:
        raise ValueError(f"NetBIOS name too long on the wire: {name}")
    return bytes(out)


def decode_first_level(encoded: bytes, protocol: str = PROTOCOL, offset: int = 0) -> bytes:
    """Return the 16 raw bytes of a 32-byte first-level encoded label.

    Raises:
        MalformedMessage: wrong length or a byte outside 'A'..'P'.
    """
    if len(encoded) != ENCODED_LENGTH:
        raise MalformedMessage(protocol, offset, f"encoded name is {len(encoded)} bytes, not 32")
    out = bytearray(16)
    for i in range(16):
        value = _DECODE_TABLE.get(encoded[2 * i : 2 * i + 2])
        if value is None:
            raise MalformedMessage(protocol, offset + 2 * i, "name byte outside 'A'..'P'")
        out[i] = value
    return bytes(out)


def _name_from_raw(raw: bytes, scope: str) -> NetbiosName:
    body = raw[:NAME_LENGTH]
    if body[:1] == b"*" and not body[1:].strip(b"\x00"):
        text = WILDCARD
    else:
        text = body.rstrip(b" ").decode("latin-1") or " "
    return NetbiosName(text, raw[NAME_LENGTH], scope)


def decode_netbios_name(
    data: bytes, offset: int = 0, *, compression: bool = False, protocol: str = PROTOCOL
) -> tuple[NetbiosName, int]:
    """Decode the name starting at ``offset``; return it and the offset after it.

    With ``compression`` false (NBSS), a pointer byte is an error. With it true
    (NBNS), pointers must point strictly backwards and chain at most
    :data:`MAX_POINTER_HOPS` times. An all-space name decodes as ``" "``.

    Raises:
        Truncated: the name runs past the end of ``data``.
        PointerLoop: a pointer points forwards or the chain is too long.
        MalformedMessage: first label not 32 bytes, bad letters, a dot inside a
            scope label, a reserved label type, or more than 255 bytes.
    """
    labels, end = _read_labels(data, offset, compression, protocol)
    if not labels or len(labels[0][1]) != ENCODED_LENGTH:
        raise MalformedMessage(protocol, offset, "first label of a NetBIOS name must be 32 bytes")
    raw = decode_first_level(labels[0][1], protocol, labels[0][0])
    for label_offset, label in labels[1:]:
        if b"." in label:
            raise MalformedMessage(protocol, label_offset, "dot inside a scope label")
    scope = ".".join(label.decode("latin-1") for _, label in labels[1:])
    return _name_from_raw(raw, scope), end


def _read_labels(
    data: bytes, offset: int, compression: bool, protocol: str
) -> tuple[list[tuple[int, bytes]], int]:
    """Collect (offset, label) pairs, following pointers; return them and the end."""
    labels: list[tuple[int, bytes]] = []
    pos, end, hops, wire = offset, -1, 0, 1
    while True:
        if pos >= len(data):
            raise Truncated(protocol, pos, "name runs past the end")
        length = data[pos]
        if length == 0:
            return labels, (pos + 1 if end < 0 else end)
        if length & 0xC0 == 0xC0:
            pos, end, hops = _follow(data, pos, end, hops, compression, protocol)
            continue
        if length & 0xC0:
            raise MalformedMessage(protocol, pos, f"reserved label type {length:#04x}")
        if pos + 1 + length > len(data):
            raise Truncated(protocol, pos, "label runs past the end")
        wire += 1 + length
        if wire > MAX_WIRE_LENGTH:
            raise MalformedMessage(protocol, pos, "name longer than 255 bytes")
        labels.append((pos + 1, data[pos + 1 : pos + 1 + length]))
        pos += 1 + length


def _follow(
    data: bytes, pos: int, end: int, hops: int, compression: bool, protocol: str
) -> tuple[int, int, int]:
    if not compression:
        raise MalformedMessage(protocol, pos, "compression pointer where none is allowed")
    if pos + 2 > len(data):
        raise Truncated(protocol, pos, "pointer runs past the end")
    target = ((data[pos] & 0x3F) << 8) | data[pos + 1]
    if target >= pos or hops >= MAX_POINTER_HOPS:
        raise PointerLoop(protocol, pos, f"pointer to {target} from {pos}")
    return target, (pos + 2 if end < 0 else end), hops + 1
