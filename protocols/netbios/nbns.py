"""NetBIOS name service messages (UDP 137): decode and encode.

Theory of operation (RFC 1002 §4.2, MS-NBTE §2.2):

- Every packet is a 12-byte header (NAME_TRN_ID; R, OPCODE, NM_FLAGS, RCODE;
  QD/AN/NS/AR counts) followed by at most one question and one resource record.
  NM_FLAGS are AA, TC, RD, RA and B (§4.2.1.1), kept as one :class:`NmFlags`.
- Requests carry one question (§4.2.1.2). Name query (opcode 0, type NB) and
  node status (opcode 0, type NBSTAT 0x21) have nothing else; registration
  (5), refresh (8, and 9 which Windows sends), multi-homed registration (0xF)
  and release (6) add one additional record naming the same name, usually
  through a compression pointer to offset 12 (§4.2.2).
- Responses carry one answer record (§4.2.1.3): NB records hold
  (NB_FLAGS, NB_ADDRESS) pairs (§4.2.13), NBSTAT records hold the node name
  array with NAME_FLAGS and the statistics whose first six bytes are the unit
  ID (§4.2.18), a WACK holds the two flag bytes of the request it acknowledges
  (§4.2.16). Negative query responses carry no data; Samba sends them, and
  its WACKs, with RR type NULL (0x000A) instead of NB, which we accept and keep.
- NB_FLAGS and NAME_FLAGS are whole 16-bit :class:`enum.IntFlag` values, so
  reserved bits survive a round trip.
- Cost: one packet holds at most two names (16 pointer hops and 255 bytes
  each, :mod:`protocols.netbios.names`) and one record. The record's lists
  are bounded too: NODE_NAME entries by their one-byte count, NB entries by
  :data:`MAX_ADDRESS_ENTRIES` (a WINS server keeps at most 25 addresses for a
  multihomed name or a domain <1C> group; a normal group answers with the
  broadcast address alone), past which the packet is
  :class:`~protocols.errors.Unsupported`.

:func:`decode_packet` returns one of the frozen message classes below and
raises only :class:`~protocols.errors.MalformedMessage` subclasses. Each
message has a matching ``encode_*`` function in :mod:`protocols.netbios.nbns_encode`.
Redirect responses (NS + A records) and other section layouts are
:class:`~protocols.errors.Unsupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from protocols._wire import Reader
from protocols.errors import MalformedMessage, Unsupported
from protocols.netbios.names import NetbiosName, decode_netbios_name

PROTOCOL = "nbns"
NBNS_PORT = 137
HEADER_LENGTH = 12
STATISTICS_LENGTH = 46
MAX_ADDRESS_ENTRIES = 64  # NB entries of one response (over 10,000 fit in a datagram)
CLASS_IN = 0x0001


class Opcode(IntEnum):
    QUERY = 0x0
    REGISTRATION = 0x5
    RELEASE = 0x6
    WACK = 0x7
    REFRESH = 0x8
    REFRESH_ALT = 0x9  # RFC 1002 erratum; what Windows sends
    MULTIHOMED_REGISTRATION = 0xF


REGISTRATION_OPCODES = frozenset(
    {Opcode.REGISTRATION, Opcode.REFRESH, Opcode.REFRESH_ALT, Opcode.MULTIHOMED_REGISTRATION}
)


class NmFlags(IntFlag):
    """The seven NM_FLAGS bits, as they sit in bits 4..10 of the flags word."""

    NONE = 0x00
    B = 0x01
    RA = 0x08
    RD = 0x10
    TC = 0x20
    AA = 0x40


class Rcode(IntEnum):
    NOERROR = 0
    FMT_ERR = 1
    SRV_ERR = 2
    NAM_ERR = 3
    IMP_ERR = 4
    RFS_ERR = 5
    ACT_ERR = 6
    CFT_ERR = 7


class RRType(IntEnum):
    NULL = 0x000A
    NB = 0x0020
    NBSTAT = 0x0021


class NbFlags(IntFlag):
    """NB_FLAGS (RFC 1002 §4.2.1.3): group bit and owner node type."""

    G = 0x8000
    ONT_P = 0x2000
    ONT_M = 0x4000
    ONT_H = 0x6000  # P | M, as MS-NBTE §2.2.1 defines H-node

    ONT_B = 0x0000


ONT_MASK = 0x6000


class NameFlags(IntFlag):
    """NAME_FLAGS of a node status entry (RFC 1002 §4.2.18)."""

    G = 0x8000
    ONT_P = 0x2000
    ONT_M = 0x4000
    ONT_H = 0x6000
    DRG = 0x1000  # deregistering
    CNF = 0x0800  # in conflict
    ACT = 0x0400  # active
    PRM = 0x0200  # permanent node name

    ONT_B = 0x0000


@dataclass(frozen=True, slots=True)
class AddressEntry:
    """One (NB_FLAGS, NB_ADDRESS) pair of an NB record."""

    flags: NbFlags
    address: str


@dataclass(frozen=True, slots=True)
class NodeStatusEntry:
    """One NODE_NAME entry: 15 name bytes (trailing spaces dropped), suffix, flags."""

    name: str
    suffix: int
    flags: NameFlags


@dataclass(frozen=True, slots=True)
class NameQueryRequest:
    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags = NmFlags.RD


@dataclass(frozen=True, slots=True)
class NodeStatusRequest:
    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags = NmFlags.NONE


@dataclass(frozen=True, slots=True)
class NameQueryResponse:
    """Positive (rcode 0, entries) or negative (rcode != 0, usually no entries)."""

    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags
    rcode: int
    ttl: int
    entries: tuple[AddressEntry, ...]
    rr_type: RRType = RRType.NB


@dataclass(frozen=True, slots=True)
class NodeStatusResponse:
    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags
    names: tuple[NodeStatusEntry, ...]
    statistics: bytes
    rcode: int = 0
    ttl: int = 0

    @property
    def unit_id(self) -> bytes:
        """The first six bytes of the statistics: the MAC address."""
        return self.statistics[:6]


@dataclass(frozen=True, slots=True)
class NameRegistrationRequest:
    """Registration (5), refresh (8/9) or multi-homed registration (0xF)."""

    trn_id: int
    opcode: Opcode
    name: NetbiosName
    nm_flags: NmFlags
    ttl: int
    flags: NbFlags
    address: str


@dataclass(frozen=True, slots=True)
class NameReleaseRequest:
    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags
    ttl: int
    flags: NbFlags
    address: str


@dataclass(frozen=True, slots=True)
class RegistrationResponse:
    """Response to opcodes 5/8/9/0xF: positive (rcode 0) or negative (ACT_ERR...)."""

    trn_id: int
    opcode: Opcode
    name: NetbiosName
    nm_flags: NmFlags
    rcode: int
    ttl: int
    flags: NbFlags
    address: str


@dataclass(frozen=True, slots=True)
class ReleaseResponse:
    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags
    rcode: int
    ttl: int
    flags: NbFlags
    address: str


@dataclass(frozen=True, slots=True)
class WaitForAck:
    """WACK (§4.2.16): wait ``ttl`` seconds; ``request_flags`` echo the request.

    RFC 1002 gives the record type NB; Samba sends NULL, which we keep.
    """

    trn_id: int
    name: NetbiosName
    nm_flags: NmFlags
    ttl: int
    request_flags: int
    rr_type: RRType = RRType.NB


NbnsMessage = (
    NameQueryRequest
    | NodeStatusRequest
    | NameQueryResponse
    | NodeStatusResponse
    | NameRegistrationRequest
    | NameReleaseRequest
    | RegistrationResponse
    | ReleaseResponse
    | WaitForAck
)


@dataclass(frozen=True, slots=True)
class _Header:
    trn_id: int
    response: bool
    opcode: int
    nm_flags: NmFlags
    rcode: int
    counts: tuple[int, int, int, int]


def make_statistics(unit_id: bytes) -> bytes:
    """Return the 46-byte STATISTICS field: ``unit_id`` (6 bytes) then zeros.

    Raises:
        ValueError: ``unit_id`` is not 6 bytes.
    """
    if len(unit_id) != 6:
        raise ValueError("unit ID (MAC) must be 6 bytes")
    return unit_id + bytes(STATISTICS_LENGTH - 6)


# ---------------------------------------------------------------- decoding


def decode_packet(data: bytes) -> NbnsMessage:
    """Decode one NBNS datagram into its typed message.

    Raises:
        Truncated: the packet ends inside a field.
        TrailingBytes: bytes follow the last record or sit inside RDATA.
        PointerLoop: a name pointer loops or points forwards.
        Unsupported: an opcode, section layout or record type we do not handle,
            or more than :data:`MAX_ADDRESS_ENTRIES` NB entries.
        MalformedMessage: any other invalid field (bad name, class, mismatch).
    """
    reader = Reader(data, PROTOCOL)
    header = _decode_header(reader)
    if header.response:
        message = _decode_response(data, reader, header)
    else:
        message = _decode_request(data, reader, header)
    reader.expect_end()
    return message


def _decode_header(reader: Reader) -> _Header:
    trn_id = reader.u16()
    word = reader.u16()
    counts = (reader.u16(), reader.u16(), reader.u16(), reader.u16())
    return _Header(
        trn_id=trn_id,
        response=bool(word & 0x8000),
        opcode=(word >> 11) & 0x0F,
        nm_flags=NmFlags((word >> 4) & 0x7F),
        rcode=word & 0x0F,
        counts=counts,
    )


def _expect_counts(reader: Reader, header: _Header, expected: tuple[int, int, int, int]) -> None:
    if header.counts != expected:
        raise Unsupported(PROTOCOL, 4, f"section counts {header.counts}, expected {expected}")


def _decode_name(data: bytes, reader: Reader) -> NetbiosName:
    name, end = decode_netbios_name(data, reader.offset, compression=True, protocol=PROTOCOL)
    reader.skip(end - reader.offset)
    return name


def _expect_class(reader: Reader) -> None:
    offset = reader.offset
    if reader.u16() != CLASS_IN:
        raise MalformedMessage(PROTOCOL, offset, "class is not IN")


def _decode_question(data: bytes, reader: Reader) -> tuple[NetbiosName, int]:
    name = _decode_name(data, reader)
    qtype = reader.u16()
    _expect_class(reader)
    return name, qtype


@dataclass(frozen=True, slots=True)
class _Record:
    name: NetbiosName
    rr_type: int
    ttl: int
    rdata: Reader
    offset: int


def _decode_record(data: bytes, reader: Reader) -> _Record:
    offset = reader.offset
    name = _decode_name(data, reader)
    rr_type = reader.u16()
    _expect_class(reader)
    ttl = reader.u32()
    rdata = reader.restrict(reader.u16())
    return _Record(name, rr_type, ttl, rdata, offset)


def _decode_address(reader: Reader) -> AddressEntry:
    flags = NbFlags(reader.u16())
    return AddressEntry(flags, ".".join(str(b) for b in reader.read(4)))


def _decode_single_entry(record: _Record) -> AddressEntry:
    if record.rr_type != RRType.NB:
        raise Unsupported(PROTOCOL, record.offset, f"record type {record.rr_type:#06x}, not NB")
    entry = _decode_address(record.rdata)
    record.rdata.expect_end()
    return entry


def _decode_request(data: bytes, reader: Reader, header: _Header) -> NbnsMessage:
    if header.opcode == Opcode.QUERY:
        _expect_counts(reader, header, (1, 0, 0, 0))
        name, qtype = _decode_question(data, reader)
        if qtype == RRType.NB:
            return NameQueryRequest(header.trn_id, name, header.nm_flags)
        if qtype == RRType.NBSTAT:
            return NodeStatusRequest(header.trn_id, name, header.nm_flags)
        raise Unsupported(PROTOCOL, reader.offset - 4, f"question type {qtype:#06x}")
    if header.opcode in REGISTRATION_OPCODES or header.opcode == Opcode.RELEASE:
        return _decode_name_request(data, reader, header)
    raise Unsupported(PROTOCOL, 2, f"request opcode {header.opcode:#x}")


def _decode_name_request(data: bytes, reader: Reader, header: _Header) -> NbnsMessage:
    _expect_counts(reader, header, (1, 0, 0, 1))
    name, qtype = _decode_question(data, reader)
    if qtype != RRType.NB:
        raise MalformedMessage(PROTOCOL, reader.offset - 4, "question type is not NB")
    record = _decode_record(data, reader)
    if record.name != name:
        raise MalformedMessage(PROTOCOL, record.offset, "record name differs from question")
    entry = _decode_single_entry(record)
    if header.opcode == Opcode.RELEASE:
        return NameReleaseRequest(
            header.trn_id, name, header.nm_flags, record.ttl, entry.flags, entry.address
        )
    return NameRegistrationRequest(
        header.trn_id,
        Opcode(header.opcode),
        name,
        header.nm_flags,
        record.ttl,
        entry.flags,
        entry.address,
    )


def _decode_response(data: bytes, reader: Reader, header: _Header) -> NbnsMessage:
    if header.opcode not in Opcode._value2member_map_:
        raise Unsupported(PROTOCOL, 2, f"response opcode {header.opcode:#x}")
    _expect_counts(reader, header, (0, 1, 0, 0))
    record = _decode_record(data, reader)
    opcode = Opcode(header.opcode)
    if opcode == Opcode.QUERY:
        return _decode_query_response(record, header)
    if opcode == Opcode.WACK:
        return _decode_wack(record, header)
    entry = _decode_single_entry(record)
    if opcode == Opcode.RELEASE:
        return ReleaseResponse(
            header.trn_id,
            record.name,
            header.nm_flags,
            header.rcode,
            record.ttl,
            entry.flags,
            entry.address,
        )
    return RegistrationResponse(
        header.trn_id,
        opcode,
        record.name,
        header.nm_flags,
        header.rcode,
        record.ttl,
        entry.flags,
        entry.address,
    )


def _decode_query_response(record: _Record, header: _Header) -> NbnsMessage:
    if record.rr_type == RRType.NBSTAT:
        return _decode_node_status(record, header)
    if record.rr_type not in (RRType.NB, RRType.NULL):
        raise Unsupported(PROTOCOL, record.offset, f"record type {record.rr_type:#06x}")
    rdata = record.rdata
    if rdata.remaining % 6:
        raise MalformedMessage(PROTOCOL, rdata.offset, "NB data is not a multiple of 6 bytes")
    count = rdata.remaining // 6
    if count > MAX_ADDRESS_ENTRIES:
        raise Unsupported(PROTOCOL, rdata.offset, f"{count} NB entries, over {MAX_ADDRESS_ENTRIES}")
    entries = tuple(_decode_address(rdata) for _ in range(count))
    return NameQueryResponse(
        header.trn_id,
        record.name,
        header.nm_flags,
        header.rcode,
        record.ttl,
        entries,
        RRType(record.rr_type),
    )


def _decode_node_status(record: _Record, header: _Header) -> NodeStatusResponse:
    rdata = record.rdata
    names = tuple(_decode_status_entry(rdata) for _ in range(rdata.u8()))
    return NodeStatusResponse(
        header.trn_id,
        record.name,
        header.nm_flags,
        names,
        rdata.rest(),
        header.rcode,
        record.ttl,
    )


def _decode_status_entry(reader: Reader) -> NodeStatusEntry:
    raw = reader.read(15)
    suffix = reader.u8()
    flags = NameFlags(reader.u16())
    return NodeStatusEntry(raw.rstrip(b" ").decode("latin-1"), suffix, flags)


def _decode_wack(record: _Record, header: _Header) -> WaitForAck:
    if record.rr_type not in (RRType.NB, RRType.NULL):
        raise Unsupported(PROTOCOL, record.offset, "WACK record type is neither NB nor NULL")
    request_flags = record.rdata.u16()
    record.rdata.expect_end()
    return WaitForAck(
        header.trn_id,
        record.name,
        header.nm_flags,
        record.ttl,
        request_flags,
        RRType(record.rr_type),
    )
