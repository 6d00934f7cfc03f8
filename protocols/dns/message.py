"""DNS message codec (sans-IO): bytes <-> :class:`Message`.

Theory of operation
-------------------
A DNS message (RFC 1035 §4.1) is a 12-byte header (§4.1.1) followed by four
sections: questions (§4.1.2) and three lists of resource records (§4.1.3:
answer, authority, additional). Names are sequences of labels (§3.1), each at
most 63 bytes, and a whole name takes at most 255 bytes on the wire. Names may
be compressed (§4.1.4): a two-byte pointer (top bits ``11``) refers to an
earlier occurrence of the remaining labels. The top-bit patterns ``01`` and
``10`` are reserved (RFC 6891 §5 retired the extended label types) and
rejected.

Names keep their exact bytes, including letter case, as a tuple of labels
(the root label is implicit): a resolver that randomises case (the "0x20"
trick) must see its own question bytes echoed back. Compression while
encoding is therefore by exact label bytes; callers who want an answer name
to point at the question use the question's own labels.

Decoding is defensive: every length is checked before slicing, compression
pointers must point strictly before the previous hop (so chains cannot loop)
and may not enter the header, counts are checked against the remaining bytes
before anything is allocated, and trailing bytes are an error. If the header
itself is unreadable the error carries ``answer_hint=None`` (drop the
datagram); past the header it carries ``answer_hint=Rcode.FORMERR`` so the
adapter can answer with the query ID.

Cost. RFC 1035 §4.1.4 lets every name of a message be a chain of pointers,
and nothing but the message size bounds how many names, records and EDNS
options a message holds: a 64 KiB datagram of 10,000 questions, each a
63-hop chain, is legal and used to cost a second of CPU. Decoding one
message therefore has a budget, and a message over it raises
:class:`~protocols.errors.Unsupported` (well-formed, more than we decode;
FORMERR like any other malformed query). Following what an authoritative
server needs from a client (a query has one question, RFC 1035 §4.1.2 and
the authority answers only QDCOUNT=1; an OPT, RFC 6891 §6.1.1, and later a
TSIG, RFC 8945 §5.1, are the additional records; an UPDATE, RFC 2136 §2,
carries a handful of records):

- at most :data:`MAX_RECORDS` questions and records together, checked from
  the header before any is read;
- at most :data:`MAX_NAME_STEPS` label reads and pointer hops over all the
  names of the message (one query name is at most 128), besides the
  :data:`MAX_POINTER_HOPS` hops one name may take;
- at most :data:`MAX_EDNS_OPTIONS` options in an OPT record.

Names are decoded once per offset: a pointer to an offset already decoded in
this message reuses those labels (one step) instead of walking the chain
again, so compressed messages stay cheap. The budgets are counts of work, not
time: every loop of the decoder runs at most the budget's number of times,
and anything else it does is one C call over bytes already bounded by the
message size (slices, ``int.from_bytes``).

EDNS (RFC 6891 §6.1): the OPT pseudo-record lives in the additional section;
its CLASS carries the requestor's UDP payload size and its TTL the upper eight
bits of the RCODE, the EDNS version and the DO flag (RFC 3225). :func:`find_edns`
extracts it as an :class:`Edns` and enforces "at most one OPT, owned by the
root" (§6.1.1).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from protocols._wire import Reader, Writer
from protocols.errors import MalformedMessage, PointerLoop, Truncated, Unsupported

PROTOCOL = "dns"
HEADER_SIZE = 12
MAX_LABEL = 63
MAX_NAME_WIRE = 255
MAX_POINTER_HOPS = 64  # per name
MAX_RECORDS = 64  # questions and records of one message together
MAX_NAME_STEPS = 512  # label reads and pointer hops over all names of one message
MAX_EDNS_OPTIONS = 64  # options of one OPT record
_MIN_QUESTION = 5  # root name + QTYPE + QCLASS
MIN_RR = 11  # root name + TYPE + CLASS + TTL + RDLENGTH: also an OPT record's fixed size
PLAIN_UDP_LIMIT = 512  # a UDP message without EDNS (RFC 1035 §4.2.1)

Name = tuple[bytes, ...]
"""A domain name as its labels, exact bytes, without the empty root label."""


class Opcode(IntEnum):
    """RFC 1035 §4.1.1, RFC 1996, RFC 2136."""

    QUERY = 0
    IQUERY = 1
    STATUS = 2
    NOTIFY = 4
    UPDATE = 5


class Rcode(IntEnum):
    """RFC 1035 §4.1.1 and RFC 6891 §9 (BADVERS needs the OPT's upper bits)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16


class RRType(IntEnum):
    """RFC 1035 §3.2.2/§3.2.3, RFC 3596 (AAAA), RFC 6891 (OPT)."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    OPT = 41
    IXFR = 251
    AXFR = 252
    ANY = 255


class RRClass(IntEnum):
    """RFC 1035 §3.2.4/§3.2.5."""

    IN = 1
    CH = 3
    HS = 4
    NONE = 254
    ANY = 255


@dataclass(frozen=True, slots=True)
class Header:
    """RFC 1035 §4.1.1 header fields; the four counts come from the sections."""

    id: int
    qr: bool = False
    opcode: int = Opcode.QUERY
    aa: bool = False
    tc: bool = False
    rd: bool = False
    ra: bool = False
    z: bool = False
    ad: bool = False
    cd: bool = False
    rcode: int = Rcode.NOERROR

    @property
    def flags(self) -> int:
        """The 16-bit flags word as it appears on the wire."""
        bits = (self.opcode & 0xF) << 11 | (self.rcode & 0xF)
        for flag, mask in _FLAG_MASKS:
            if getattr(self, flag):
                bits |= mask
        return bits

    @classmethod
    def from_flags(cls, id: int, flags: int) -> Header:
        """Split a flags word into fields."""
        values = {flag: bool(flags & mask) for flag, mask in _FLAG_MASKS}
        opcode, rcode = _enum(Opcode, flags >> 11 & 0xF), _enum(Rcode, flags & 0xF)
        return cls(id, opcode=opcode, rcode=rcode, **values)


_FLAG_MASKS = (
    ("qr", 0x8000),
    ("aa", 0x0400),
    ("tc", 0x0200),
    ("rd", 0x0100),
    ("ra", 0x0080),
    ("z", 0x0040),
    ("ad", 0x0020),
    ("cd", 0x0010),
)


@dataclass(frozen=True, slots=True)
class Question:
    """RFC 1035 §4.1.2."""

    name: Name
    qtype: int
    qclass: int = RRClass.IN


@dataclass(frozen=True, slots=True)
class ARdata:
    address: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class AAAARdata:
    address: ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class NameRdata:
    """NS, CNAME and PTR: a single domain name (RFC 1035 §3.3)."""

    target: Name


@dataclass(frozen=True, slots=True)
class SOARdata:
    """RFC 1035 §3.3.13."""

    mname: Name
    rname: Name
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True, slots=True)
class OPTRdata:
    """RFC 6891 §6.1.2: a list of (OPTION-CODE, OPTION-DATA)."""

    options: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class RawRdata:
    """Any type we do not interpret (RFC 3597): the RDATA bytes as they came."""

    data: bytes


Rdata = ARdata | AAAARdata | NameRdata | SOARdata | OPTRdata | RawRdata


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """RFC 1035 §4.1.3. For OPT, ``rclass`` and ``ttl`` hold the EDNS fields."""

    name: Name
    rtype: int
    rclass: int
    ttl: int
    rdata: Rdata


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    questions: tuple[Question, ...] = ()
    answers: tuple[ResourceRecord, ...] = ()
    authorities: tuple[ResourceRecord, ...] = ()
    additionals: tuple[ResourceRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Edns:
    """The fields of an OPT record (RFC 6891 §6.1.3, RFC 3225 for DO)."""

    payload: int = 1232
    ext_rcode: int = 0
    version: int = 0
    do: bool = False
    z: int = 0
    options: tuple[tuple[int, bytes], ...] = ()

    def to_record(self) -> ResourceRecord:
        """The OPT pseudo-record carrying these fields."""
        ttl = self.ext_rcode << 24 | self.version << 16 | self.do << 15 | self.z
        return ResourceRecord((), RRType.OPT, self.payload, ttl, OPTRdata(self.options))


def _enum(kind: type[IntEnum], value: int) -> int:
    try:
        return kind(value)
    except ValueError:
        return value


def name_from_text(text: str) -> Name:
    """``"a.Example."`` -> ``(b"a", b"Example")``; ``""`` and ``"."`` are the root.

    Raises:
        ValueError: an empty or over-long label, or a name over 255 bytes.
    """
    stripped = text[:-1] if text.endswith(".") else text
    name = tuple(label.encode("ascii") for label in stripped.split(".")) if stripped else ()
    _check_name(name)
    return name


def name_to_text(name: Name) -> str:
    """Presentation form with a trailing dot (bytes outside ASCII kept as escapes)."""
    return "".join(label.decode("ascii", "backslashreplace") + "." for label in name) or "."


def name_key(name: Name) -> Name:
    """The case-folded form used for comparisons (RFC 4343: ASCII only)."""
    return tuple(label.lower() for label in name)


def wire_length(name: Name) -> int:
    return sum(len(label) + 1 for label in name) + 1


def _check_name(name: Name) -> None:
    if any(not 0 < len(label) <= MAX_LABEL for label in name):
        raise ValueError(f"label length outside 1..{MAX_LABEL} in {name!r}")
    if wire_length(name) > MAX_NAME_WIRE:
        raise ValueError(f"name longer than {MAX_NAME_WIRE} bytes: {name!r}")


# ---------------------------------------------------------------- decoding


def decode_message(data: bytes) -> Message:
    """Decode one DNS message, within the budgets of the module comment.

    Raises:
        Truncated: fewer than 12 bytes (``answer_hint=None``: drop), or a
            section ends early (``answer_hint=Rcode.FORMERR``).
        PointerLoop: a compression pointer that does not point backwards, or
            more than :data:`MAX_POINTER_HOPS` in one name.
        TrailingBytes: bytes after the last announced record.
        Unsupported: more than :data:`MAX_RECORDS` records,
            :data:`MAX_NAME_STEPS` name steps or :data:`MAX_EDNS_OPTIONS`
            options.
        MalformedMessage: any other violation (label type, name length,
            RDATA that does not match its type); past the header every error
            carries ``answer_hint=Rcode.FORMERR``.
    """
    reader = Reader(data, PROTOCOL)
    header = Header.from_flags(reader.u16(), reader.u16())
    counts = (reader.u16(), reader.u16(), reader.u16(), reader.u16())
    try:
        return _decode_body(reader, header, counts)
    except MalformedMessage as exc:
        exc.answer_hint = Rcode.FORMERR
        raise


def _decode_body(reader: Reader, header: Header, counts: tuple[int, int, int, int]) -> Message:
    qdcount, ancount, nscount, arcount = counts
    needed = qdcount * _MIN_QUESTION + (ancount + nscount + arcount) * MIN_RR
    if needed > reader.remaining:
        raise Truncated(PROTOCOL, reader.offset, f"counts need {needed} bytes")
    if sum(counts) > MAX_RECORDS:
        raise Unsupported(PROTOCOL, 4, f"{sum(counts)} records, more than {MAX_RECORDS}")
    names = _Names(reader.data)
    questions = tuple(_decode_question(reader, names) for _ in range(qdcount))
    answers = tuple(_decode_rr(reader, names) for _ in range(ancount))
    authorities = tuple(_decode_rr(reader, names) for _ in range(nscount))
    additionals = tuple(_decode_rr(reader, names) for _ in range(arcount))
    reader.expect_end()
    return Message(header, questions, answers, authorities, additionals)


def _decode_question(reader: Reader, names: _Names) -> Question:
    name = names.decode(reader)
    return Question(name, _enum(RRType, reader.u16()), _enum(RRClass, reader.u16()))


def _decode_rr(reader: Reader, names: _Names) -> ResourceRecord:
    name = names.decode(reader)
    rtype = _enum(RRType, reader.u16())
    rclass = reader.u16() if rtype == RRType.OPT else _enum(RRClass, reader.u16())
    ttl = reader.u32()
    rdata = _decode_rdata(rtype, reader.restrict(reader.u16()), names)
    return ResourceRecord(name, rtype, rclass, ttl, rdata)


def decode_name(reader: Reader) -> Name:
    """Read a possibly compressed name at the reader's offset (RFC 1035 §4.1.4).

    Pointers are followed in ``reader.data`` but the reader itself only
    advances over the in-line part and never past its ``end``. A name alone
    has the step budget of a whole message.

    Raises:
        Truncated: the name runs off the end of the region.
        PointerLoop: a pointer not strictly before the previous position.
        MalformedMessage: a reserved label type or a name over 255 bytes.
    """
    return _Names(reader.data).decode(reader)


# A decoded suffix: the whole name's labels, where the suffix starts in them,
# its wire length (root included) and the pointer hops it took.
_Suffix = tuple[Name, int, int, int]


class _Names:
    """The names of one message: decoded once per offset, within one step budget.

    Sound because a walk that reached offset P only followed pointers below
    the previous hop, so decoding afresh at P (where the first pointer must
    only point below P) succeeds the same way and reads the same labels; only
    the per-name limits (hops, 255 bytes) depend on what came before, and
    they are checked again on every reuse.
    """

    __slots__ = ("_data", "_memo", "_steps", "_unindexed")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._memo: dict[int, _Suffix] = {}
        # Names decoded since the memo was last brought up to date, with the
        # offsets their walk reached; indexed at the next pointer, so a
        # message without pointers (most queries) never builds the memo.
        self._unindexed: list[tuple[Name, int, int, list[tuple[int, int, int, int]]]] = []
        self._steps = MAX_NAME_STEPS

    def decode(self, reader: Reader) -> Name:
        """The name at the reader's offset; the reader moves past its in-line part."""
        data = self._data
        labels: list[bytes] = []
        trail: list[tuple[int, int, int, int]] = []  # offset, labels, length, hops so far
        length, hops, resume = 1, 0, -1
        pos, end, limit = reader.offset, reader.end, reader.offset
        while True:
            self._steps -= 1
            if self._steps < 0:
                raise Unsupported(PROTOCOL, pos, f"names need over {MAX_NAME_STEPS} steps")
            trail.append((pos, len(labels), length, hops))
            if pos >= end:
                raise Truncated(PROTOCOL, pos, f"need 1 bytes, have {end - pos}")
            size = data[pos]
            if size == 0:
                pos += 1
                break
            if size >= 0xC0:
                target = (size & 0x3F) << 8 | _byte(data, pos + 1, end)
                _check_pointer(pos, target, limit, hops)
                resume, hops = pos + 2 if resume < 0 else resume, hops + 1
                suffix = self._suffix_at(target)
                if suffix is not None:
                    length, hops = _join(labels, suffix, length, hops, pos)
                    break
                pos = limit = target
                end = len(data)
                continue
            length = _check_label(size, length, pos)
            if pos + 1 + size > end:
                raise Truncated(PROTOCOL, pos + 1, f"need {size} bytes, have {end - pos - 1}")
            labels.append(data[pos + 1 : pos + 1 + size])
            pos += 1 + size
        reader.skip((pos if resume < 0 else resume) - reader.offset)
        name = tuple(labels)
        self._unindexed.append((name, length, hops, trail))
        return name

    def _suffix_at(self, offset: int) -> _Suffix | None:
        """The suffix a decoded name has at ``offset``, if any name's walk reached it."""
        for name, length, hops, trail in self._unindexed:
            for at, index, length_at, hops_at in trail:
                self._memo[at] = (name, index, length - length_at + 1, hops - hops_at)
        self._unindexed.clear()
        return self._memo.get(offset)


def _byte(data: bytes, pos: int, end: int) -> int:
    if pos >= end:
        raise Truncated(PROTOCOL, pos, f"need 1 bytes, have {end - pos}")
    return data[pos]


def _check_pointer(at: int, target: int, limit: int, hops: int) -> None:
    if target >= limit:
        raise PointerLoop(PROTOCOL, at, f"pointer to {target} does not point backwards")
    if target < HEADER_SIZE:
        raise MalformedMessage(PROTOCOL, at, f"pointer to {target} enters the header")
    if hops >= MAX_POINTER_HOPS:
        raise PointerLoop(PROTOCOL, at, "too many compression pointers")


def _check_label(size: int, length: int, at: int) -> int:
    """The name's wire length with a label of ``size`` bytes added."""
    if size > MAX_LABEL:
        raise MalformedMessage(PROTOCOL, at, f"label type/length {size:#x} invalid")
    length += size + 1
    if length > MAX_NAME_WIRE:
        raise MalformedMessage(PROTOCOL, at, "name longer than 255 bytes")
    return length


def _join(labels: list[bytes], suffix: _Suffix, length: int, hops: int, at: int) -> tuple[int, int]:
    """Append a decoded suffix to ``labels``; return the name's length and hops."""
    name, index, suffix_length, suffix_hops = suffix
    if hops + suffix_hops > MAX_POINTER_HOPS:
        raise PointerLoop(PROTOCOL, at, "too many compression pointers")
    length += suffix_length - 1
    if length > MAX_NAME_WIRE:
        raise MalformedMessage(PROTOCOL, at, "name longer than 255 bytes")
    labels.extend(name[index:])
    return length, hops + suffix_hops


def _decode_rdata(rtype: int, reader: Reader, names: _Names) -> Rdata:
    rdata: Rdata
    if rtype == RRType.A:
        rdata = ARdata(ipaddress.IPv4Address(_fixed(reader, 4)))
    elif rtype == RRType.AAAA:
        rdata = AAAARdata(ipaddress.IPv6Address(_fixed(reader, 16)))
    elif rtype in (RRType.NS, RRType.CNAME, RRType.PTR):
        rdata = NameRdata(names.decode(reader))
    elif rtype == RRType.SOA:
        mname, rname = names.decode(reader), names.decode(reader)
        values = [reader.u32() for _ in range(5)]
        rdata = SOARdata(mname, rname, *values)
    elif rtype == RRType.OPT:
        rdata = OPTRdata(_decode_options(reader))
    else:
        rdata = RawRdata(reader.rest())
    reader.expect_end()
    return rdata


def _fixed(reader: Reader, size: int) -> bytes:
    if reader.remaining != size:
        raise MalformedMessage(PROTOCOL, reader.offset, f"RDATA is {reader.remaining}, not {size}")
    return reader.read(size)


def _decode_options(reader: Reader) -> tuple[tuple[int, bytes], ...]:
    options: list[tuple[int, bytes]] = []
    while reader.remaining:
        if len(options) == MAX_EDNS_OPTIONS:
            raise Unsupported(PROTOCOL, reader.offset, f"more than {MAX_EDNS_OPTIONS} options")
        code = reader.u16()
        options.append((code, reader.read(reader.u16())))
    return tuple(options)


# ---------------------------------------------------------------- EDNS


def find_edns(message: Message) -> Edns | None:
    """The message's EDNS fields, or None when it carries no OPT.

    Raises:
        MalformedMessage: more than one OPT, an OPT outside the additional
            section, or an OPT whose owner is not the root (RFC 6891 §6.1.1);
            ``answer_hint`` is FORMERR.
    """
    for section in (message.answers, message.authorities):
        if any(rr.rtype == RRType.OPT for rr in section):
            raise _formerr("OPT outside the additional section")
    opts = [rr for rr in message.additionals if rr.rtype == RRType.OPT]
    if not opts:
        return None
    if len(opts) > 1:
        raise _formerr(f"{len(opts)} OPT records")
    opt = opts[0]
    if opt.name != () or not isinstance(opt.rdata, OPTRdata):
        raise _formerr("OPT owner is not the root")
    ttl = opt.ttl
    return Edns(
        opt.rclass, ttl >> 24, ttl >> 16 & 0xFF, bool(ttl & 0x8000), ttl & 0x7FFF, opt.rdata.options
    )


def _formerr(reason: str) -> MalformedMessage:
    return MalformedMessage(PROTOCOL, 0, reason, answer_hint=Rcode.FORMERR)


# ---------------------------------------------------------------- encoding


def encode_message(message: Message, *, max_size: int | None = None) -> bytes:
    """Encode ``message`` with name compression (RFC 1035 §4.1.4).

    If ``max_size`` is given and the message does not fit, the result is the
    header with TC=1, the questions and any OPT record (RFC 2181 §9,
    RFC 6891 §7), with every other record dropped.

    Raises:
        ValueError: a label or name over its length limit, or a field that
            does not fit its width; these are caller bugs, not hostile input.
    """
    wire = _encode(message)
    if max_size is None or len(wire) <= max_size:
        return wire
    opts = tuple(rr for rr in message.additionals if rr.rtype == RRType.OPT)
    header = replace(message.header, tc=True)
    return _encode(Message(header, message.questions, (), (), opts))


def _encode(message: Message) -> bytes:
    writer = Writer()
    table: dict[Name, int] = {}
    sections = (message.answers, message.authorities, message.additionals)
    try:
        writer.u16(message.header.id)
        writer.u16(message.header.flags)
        for count in (len(message.questions), *map(len, sections)):
            writer.u16(count)
        for question in message.questions:
            encode_name(writer, question.name, table)
            writer.u16(question.qtype)
            writer.u16(question.qclass)
        for section in sections:
            for record in section:
                _encode_rr(writer, record, table)
    except (struct.error, OverflowError) as exc:
        raise ValueError(str(exc)) from exc
    return writer.getvalue()


def encode_name(writer: Writer, name: Name, table: dict[Name, int]) -> None:
    """Append ``name``, pointing at the longest suffix already in ``table``.

    Suffixes are matched by exact bytes so letter case is never rewritten.

    Raises:
        ValueError: a label outside 1..63 bytes or a name over 255 bytes.
    """
    _check_name(name)
    for index in range(len(name)):
        suffix = name[index:]
        pointer = table.get(suffix)
        if pointer is not None:
            writer.u16(0xC000 | pointer)
            return
        if len(writer) < 0x4000:
            table[suffix] = len(writer)
        writer.u8(len(name[index]))
        writer.write(name[index])
    writer.u8(0)


def _encode_rr(writer: Writer, record: ResourceRecord, table: dict[Name, int]) -> None:
    encode_name(writer, record.name, table)
    writer.u16(record.rtype)
    writer.u16(record.rclass)
    writer.u32(record.ttl)
    length_at = len(writer)
    writer.u16(0)
    _encode_rdata(writer, record.rdata, table)
    rdlength = len(writer) - length_at - 2
    if rdlength > 0xFFFF:
        raise ValueError(f"RDATA of {rdlength} bytes")
    writer.buf[length_at : length_at + 2] = rdlength.to_bytes(2, "big")


def _encode_rdata(writer: Writer, rdata: Rdata, table: dict[Name, int]) -> None:
    if isinstance(rdata, ARdata | AAAARdata):
        writer.write(rdata.address.packed)
    elif isinstance(rdata, NameRdata):
        encode_name(writer, rdata.target, table)
    elif isinstance(rdata, SOARdata):
        encode_name(writer, rdata.mname, table)
        encode_name(writer, rdata.rname, table)
        for value in (rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum):
            writer.u32(value)
    elif isinstance(rdata, OPTRdata):
        for code, data in rdata.options:
            writer.u16(code)
            writer.u16(len(data))
            writer.write(data)
    else:
        writer.write(rdata.data)
