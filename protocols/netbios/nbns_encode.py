"""NetBIOS name service messages (UDP 137): the encoders.

Theory of operation (RFC 1002 §4.2, MS-NBTE §2.2): the writing half of
:mod:`protocols.netbios.nbns`, split by direction. Each ``encode_*`` writes the
12-byte header with the section counts its message implies (one question for
requests, plus one additional record for registration, refresh and release;
one answer record for responses), then the question and the record. The
additional record of a request names the question through a compression
pointer to offset 12 (RFC 1002 §4.2.2), as Windows and Samba send it.
Encoders trust their input types and raise ``ValueError`` for values that do
not fit the wire (a caller bug, never hostile input).
"""

from __future__ import annotations

import ipaddress

from protocols._wire import Writer
from protocols.netbios.names import NetbiosName, encode_netbios_name
from protocols.netbios.nbns import (
    CLASS_IN,
    AddressEntry,
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NameReleaseRequest,
    NbnsMessage,
    NodeStatusEntry,
    NodeStatusRequest,
    NodeStatusResponse,
    Opcode,
    RegistrationResponse,
    ReleaseResponse,
    RRType,
    WaitForAck,
)


def _header(
    writer: Writer,
    trn_id: int,
    response: bool,
    opcode: int,
    nm_flags: int,
    rcode: int,
    counts: tuple[int, int, int, int],
) -> None:
    writer.u16(trn_id)
    writer.u16((0x8000 if response else 0) | (opcode << 11) | (nm_flags << 4) | rcode)
    for count in counts:
        writer.u16(count)


def _pack_ipv4(address: str) -> bytes:
    return ipaddress.IPv4Address(address).packed


def _record_head(writer: Writer, name: bytes, rr_type: int, ttl: int, rdlength: int) -> None:
    writer.write(name)
    writer.u16(rr_type)
    writer.u16(CLASS_IN)
    writer.u32(ttl)
    writer.u16(rdlength)


def _question(writer: Writer, name: NetbiosName, qtype: int) -> None:
    writer.write(encode_netbios_name(name))
    writer.u16(qtype)
    writer.u16(CLASS_IN)


def encode_name_query_request(message: NameQueryRequest) -> bytes:
    """Encode a NAME QUERY REQUEST (RFC 1002 §4.2.12).

    Raises:
        ValueError: a field does not fit its wire width.
    """
    writer = Writer()
    _header(writer, message.trn_id, False, Opcode.QUERY, message.nm_flags, 0, (1, 0, 0, 0))
    _question(writer, message.name, RRType.NB)
    return writer.getvalue()


def encode_node_status_request(message: NodeStatusRequest) -> bytes:
    """Encode a NODE STATUS REQUEST (RFC 1002 §4.2.17).

    Raises:
        ValueError: a field does not fit its wire width.
    """
    writer = Writer()
    _header(writer, message.trn_id, False, Opcode.QUERY, message.nm_flags, 0, (1, 0, 0, 0))
    _question(writer, message.name, RRType.NBSTAT)
    return writer.getvalue()


def _encode_name_request(
    trn_id: int,
    opcode: int,
    nm_flags: int,
    name: NetbiosName,
    ttl: int,
    flags: int,
    address: str,
) -> bytes:
    writer = Writer()
    _header(writer, trn_id, False, opcode, nm_flags, 0, (1, 0, 0, 1))
    _question(writer, name, RRType.NB)
    _record_head(writer, b"\xc0\x0c", RRType.NB, ttl, 6)  # pointer to the question name
    writer.u16(flags)
    writer.write(_pack_ipv4(address))
    return writer.getvalue()


def encode_name_registration_request(message: NameRegistrationRequest) -> bytes:
    """Encode a registration, refresh or multi-homed registration (§4.2.2-4.2.4).

    The record name is a pointer to the question name, as Windows and Samba send.

    Raises:
        ValueError: a field does not fit its wire width or the address is invalid.
    """
    m = message
    return _encode_name_request(m.trn_id, m.opcode, m.nm_flags, m.name, m.ttl, m.flags, m.address)


def encode_name_release_request(message: NameReleaseRequest) -> bytes:
    """Encode a NAME RELEASE REQUEST (RFC 1002 §4.2.9).

    Raises:
        ValueError: a field does not fit its wire width or the address is invalid.
    """
    m = message
    return _encode_name_request(
        m.trn_id, Opcode.RELEASE, m.nm_flags, m.name, m.ttl, m.flags, m.address
    )


def _encode_response(trn_id: int, opcode: int, nm_flags: int, rcode: int, record: bytes) -> bytes:
    writer = Writer()
    _header(writer, trn_id, True, opcode, nm_flags, rcode, (0, 1, 0, 0))
    writer.write(record)
    return writer.getvalue()


def _nb_record(
    name: NetbiosName, rr_type: int, ttl: int, entries: tuple[AddressEntry, ...]
) -> bytes:
    writer = Writer()
    _record_head(writer, encode_netbios_name(name), rr_type, ttl, 6 * len(entries))
    for entry in entries:
        writer.u16(entry.flags)
        writer.write(_pack_ipv4(entry.address))
    return writer.getvalue()


def encode_name_query_response(message: NameQueryResponse) -> bytes:
    """Encode a positive or negative NAME QUERY RESPONSE (§4.2.13, §4.2.14).

    Raises:
        ValueError: a field does not fit its wire width or an address is invalid.
    """
    m = message
    record = _nb_record(m.name, m.rr_type, m.ttl, m.entries)
    return _encode_response(m.trn_id, Opcode.QUERY, m.nm_flags, m.rcode, record)


def node_status_rdata(names: tuple[NodeStatusEntry, ...], statistics: bytes) -> bytes:
    """Return the NBSTAT RDATA: NUM_NAMES, the name array, the statistics.

    Raises:
        ValueError: more than 255 names or a name longer than 15 bytes.
    """
    if len(names) > 0xFF:
        raise ValueError("a node status response holds at most 255 names")
    writer = Writer()
    writer.u8(len(names))
    for entry in names:
        raw = entry.name.encode("latin-1")
        if len(raw) > 15:
            raise ValueError(f"node status name longer than 15 bytes: {entry.name!r}")
        writer.write(raw.ljust(15, b" "))
        writer.u8(entry.suffix)
        writer.u16(entry.flags)
    writer.write(statistics)
    return writer.getvalue()


def encode_node_status_response(message: NodeStatusResponse) -> bytes:
    """Encode a NODE STATUS RESPONSE (RFC 1002 §4.2.18).

    Raises:
        ValueError: a field does not fit its wire width.
    """
    m = message
    rdata = node_status_rdata(m.names, m.statistics)
    writer = Writer()
    _record_head(writer, encode_netbios_name(m.name), RRType.NBSTAT, m.ttl, len(rdata))
    writer.write(rdata)
    return _encode_response(m.trn_id, Opcode.QUERY, m.nm_flags, m.rcode, writer.getvalue())


def encode_registration_response(message: RegistrationResponse) -> bytes:
    """Encode a positive or negative registration/refresh response (§4.2.5, §4.2.6).

    Raises:
        ValueError: a field does not fit its wire width or the address is invalid.
    """
    m = message
    record = _nb_record(m.name, RRType.NB, m.ttl, (AddressEntry(m.flags, m.address),))
    return _encode_response(m.trn_id, m.opcode, m.nm_flags, m.rcode, record)


def encode_release_response(message: ReleaseResponse) -> bytes:
    """Encode a positive or negative NAME RELEASE RESPONSE (§4.2.10, §4.2.11).

    Raises:
        ValueError: a field does not fit its wire width or the address is invalid.
    """
    m = message
    record = _nb_record(m.name, RRType.NB, m.ttl, (AddressEntry(m.flags, m.address),))
    return _encode_response(m.trn_id, Opcode.RELEASE, m.nm_flags, m.rcode, record)


def encode_wack(message: WaitForAck) -> bytes:
    """Encode a WAIT FOR ACKNOWLEDGEMENT response (RFC 1002 §4.2.16).

    Raises:
        ValueError: a field does not fit its wire width.
    """
    m = message
    writer = Writer()
    _record_head(writer, encode_netbios_name(m.name), m.rr_type, m.ttl, 2)
    writer.u16(m.request_flags)
    return _encode_response(m.trn_id, Opcode.WACK, m.nm_flags, 0, writer.getvalue())


def encode_packet(message: NbnsMessage) -> bytes:
    """Encode any NBNS message with its ``encode_*`` function.

    Raises:
        ValueError: a field does not fit its wire width.
    """
    match message:
        case NameQueryRequest():
            return encode_name_query_request(message)
        case NodeStatusRequest():
            return encode_node_status_request(message)
        case NameQueryResponse():
            return encode_name_query_response(message)
        case NodeStatusResponse():
            return encode_node_status_response(message)
        case NameRegistrationRequest():
            return encode_name_registration_request(message)
        case NameReleaseRequest():
            return encode_name_release_request(message)
        case RegistrationResponse():
            return encode_registration_response(message)
        case ReleaseResponse():
            return encode_release_response(message)
        case WaitForAck():
            return encode_wack(message)
