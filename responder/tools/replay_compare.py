"""Replay, step two: two answers compared, field by field, with what legitimately varies masked.

Each protocol turns an answer into named fields (``key -> text``); two
answers match when their fields do, and each field that differs is one line
of the report, ``key: captured → replayed``.

- DNS (RFC 1035 §4.1): the RCODE and header flags, then one field per
  record set, keyed by section, type and owner (``PTR
  12.0.0.127.in-addr.arpa``), valued by the sorted RDATA with TTLs. The SOA
  serial is masked: the daemon sets it from the clock at each load.
- NBNS (RFC 1002 §4.2): every field of the decoded packet (flags, RCODE,
  TTL, addresses, the node status names and unit ID).
- SMB: each NBSS frame's bytes with these masked: SMB2 SessionId and
  Signature (MS-SMB2 §2.2.1); NEGOTIATE response ServerGuid, SystemTime,
  ServerStartTime and the preauth-integrity salt (§2.2.4, §2.2.3.1.1); SMB1
  UID, signature, SystemTime, ServerTimeZone and the challenge or GUID
  (MS-CIFS §2.2.3.1, §2.2.4.52.2); in any NTLMSSP CHALLENGE the
  ServerChallenge and the MsvAvTimestamp pair (MS-NLMP §2.2.1.2, §2.2.2.1).
  When masked bytes differ, the frame's fields (command, status, dialect,
  NTLM names) show which.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable

from protocols.auth import ntlmssp
from protocols.dns import message as dns
from protocols.errors import MalformedMessage
from protocols.netbios import nbns
from protocols.smb import smb1

Fields = dict[str, str]
NTLMSSP_CHALLENGE = b"NTLMSSP\x00\x02\x00\x00\x00"
SMB2 = b"\xfeSMB"
SMB1 = b"\xffSMB"


def diff(captured: Fields, replayed: Fields) -> list[str]:
    """One ``key: captured → replayed`` line per field that differs."""
    lines = []
    for key in dict.fromkeys([*captured, *replayed]):
        before, after = captured.get(key, "(none)"), replayed.get(key, "(none)")
        if before != after:
            lines.append(f"{key}: {before} → {after}")
    return lines


def fields_of(protocol: str) -> Callable[[bytes], Fields]:
    """The field extractor of ``protocol`` (dns, nbns, smb)."""
    return {"dns": dns_fields, "nbns": nbns_fields, "smb": smb_fields}[protocol]


# -- DNS -------------------------------------------------------------------------------


def dns_fields(data: bytes) -> Fields:
    """The fields of a DNS answer (undecodable: its bytes, as one field)."""
    try:
        message = dns.decode_message(data)
    except MalformedMessage as exc:
        return {"undecodable": f"{exc} ({data.hex()})"}
    header = message.header
    fields = {
        "rcode": dns.Rcode(header.rcode).name
        if header.rcode in dns.Rcode._value2member_map_
        else str(header.rcode),
        "flags": " ".join(f for f in ("aa", "tc", "rd", "ra") if getattr(header, f, False)),
    }
    sections = [
        ("answer", message.answers),
        ("authority", message.authorities),
        ("additional", message.additionals),
    ]
    for section, records in sections:
        for key, value in _rrsets(records).items():
            fields[f"{key}" if section == "answer" else f"{section} {key}"] = value
    return fields


def _rrsets(records: tuple[dns.ResourceRecord, ...]) -> dict[str, str]:
    sets: dict[str, list[str]] = {}
    ttls: dict[str, set[int]] = {}
    for record in records:
        known = record.rtype in dns.RRType._value2member_map_
        rtype = dns.RRType(record.rtype).name if known else str(record.rtype)
        key = f"{rtype} {dns.name_to_text(record.name).rstrip('.').lower() or '.'}"
        sets.setdefault(key, []).append(_rdata(record))
        if record.rtype != dns.RRType.OPT:
            ttls.setdefault(key, set()).add(record.ttl)
    fields = {key: ", ".join(sorted(values)) for key, values in sets.items()}
    fields |= {f"{key} ttl": ", ".join(map(str, sorted(t))) for key, t in ttls.items()}
    return fields


def _rdata(record: dns.ResourceRecord) -> str:
    rdata = record.rdata
    if isinstance(rdata, dns.ARdata | dns.AAAARdata):
        return str(rdata.address)
    if isinstance(rdata, dns.NameRdata):
        return dns.name_to_text(rdata.target).rstrip(".").lower()
    if isinstance(rdata, dns.SOARdata):
        mname = dns.name_to_text(rdata.mname).rstrip(".").lower()
        rname = dns.name_to_text(rdata.rname).rstrip(".").lower()
        timers = f"{rdata.refresh} {rdata.retry} {rdata.expire} {rdata.minimum}"
        return f"{mname} {rname} (serial masked) {timers}"
    if isinstance(rdata, dns.OPTRdata):
        return f"payload {record.rclass} options {sorted(c for c, _ in rdata.options)}"
    return repr(rdata)


# -- NBNS ------------------------------------------------------------------------------


def nbns_fields(data: bytes) -> Fields:
    """Every field of the decoded NBNS packet, flattened."""
    try:
        message = nbns.decode_packet(data)
    except MalformedMessage as exc:
        return {"undecodable": f"{exc} ({data.hex()})"}
    fields = {"message": type(message).__name__}
    for name in getattr(message, "__slots__", ()):
        value = getattr(message, name)
        if name == "statistics":
            fields["unit_id"] = value[:6].hex(":")
        elif isinstance(value, enum.IntFlag):
            fields[name] = _flags(value)
        elif isinstance(value, tuple):
            fields[name] = ", ".join(_entry(v) for v in value)
        else:
            fields[name] = str(value)
    return fields


def _entry(value: object) -> str:
    if isinstance(value, nbns.NodeStatusEntry):
        return f"{value.name}<{value.suffix:02x}> {_flags(value.flags)}"
    if isinstance(value, nbns.AddressEntry):
        return f"{value.address} {_flags(value.flags)}"
    return str(value)


def _flags(flags: enum.IntFlag) -> str:
    names = [f.name for f in type(flags) if f.value and f in flags and f.name]
    return "|".join(names) or hex(int(flags))


# -- SMB -------------------------------------------------------------------------------


def mask_smb(frame: bytes) -> bytes:
    """``frame`` (NBSS header included) with every varying field zeroed."""
    masked = bytearray(frame)
    message = memoryview(masked)[4:]
    if bytes(message[:4]) == SMB2 and len(message) >= 64:
        _mask_smb2(message)
    elif bytes(message[:4]) == SMB1 and len(message) >= 32:
        _mask_smb1(message)
    _mask_challenges(masked)
    return bytes(masked)


def _zero(buffer: memoryview | bytearray, start: int, length: int) -> None:
    end = min(start + length, len(buffer))
    if 0 <= start < end:
        buffer[start:end] = bytes(end - start)


def _mask_smb2(message: memoryview) -> None:
    _zero(message, 40, 24)  # SessionId, Signature
    command = int.from_bytes(message[12:14], "little")
    is_response = message[16] & 0x01
    if command != 0 or not is_response or len(message) < 64 + 64:
        return
    body = 64
    for offset, length in ((8, 16), (40, 8), (48, 8)):  # ServerGuid, SystemTime, ServerStartTime
        _zero(message, body + offset, length)
    count = int.from_bytes(message[body + 6 : body + 8], "little")
    at = int.from_bytes(message[body + 60 : body + 64], "little")
    for _ in range(count if at else 0):
        if at + 8 > len(message):
            return
        kind, length = struct.unpack_from("<HH", message, at)
        if kind == 1 and length >= 4:  # PREAUTH_INTEGRITY: algorithms, then the salt
            algorithms, salt = struct.unpack_from("<HH", message, at + 8)
            _zero(message, at + 8 + 4 + 2 * algorithms, salt)
        at += 8 + length + (-(8 + length) % 8)


def _mask_smb1(message: memoryview) -> None:
    _zero(message, 14, 8)  # SecurityFeatures (signature)
    _zero(message, 28, 2)  # UID
    command, is_response = message[4], message[9] & 0x80
    if command != 0x72 or not is_response or len(message) < 33 or message[32] != 17:
        return
    words = 33
    _zero(message, words + 23, 10)  # SystemTime, ServerTimeZone
    capabilities = int.from_bytes(message[words + 19 : words + 23], "little")
    data = words + 34 + 2
    challenge = 16 if capabilities & 0x80000000 else message[words + 33]
    _zero(message, data, challenge)


def _mask_challenges(frame: bytearray) -> None:
    at = frame.find(NTLMSSP_CHALLENGE)
    while at >= 0:
        _zero(frame, at + 24, 8)  # ServerChallenge
        length, offset = (
            struct.unpack_from("<H2xI", frame, at + 40) if at + 48 <= len(frame) else (0, 0)
        )
        _mask_timestamp(frame, at + offset, at + offset + length)
        at = frame.find(NTLMSSP_CHALLENGE, at + 1)


def _mask_timestamp(frame: bytearray, at: int, end: int) -> None:
    while at + 4 <= min(end, len(frame)):
        av_id, length = struct.unpack_from("<HH", frame, at)
        if av_id == ntlmssp.AvId.EOL:
            return
        if av_id == ntlmssp.AvId.TIMESTAMP:
            _zero(frame, at + 4, length)
        at += 4 + length


def smb_fields(frame: bytes) -> Fields:
    """What a reader of the frame sees: its type, command, status, dialect and NTLM names."""
    fields = {"frame": f"type {frame[0]:#04x}" if frame else "empty", "length": str(len(frame))}
    message = frame[4:]
    if message[:4] == SMB2 and len(message) >= 64:
        fields |= _smb2_fields(message)
    elif message[:4] == SMB1 and len(message) >= 32:
        fields |= _smb1_fields(message)
    fields |= _ntlm_fields(frame)
    fields["masked bytes"] = mask_smb(frame).hex()
    return fields


def _smb2_fields(message: bytes) -> Fields:
    status, command, credits = struct.unpack_from("<IHH", message, 8)
    fields = {"smb2 command": str(command), "status": f"{status:#010x}", "credits": str(credits)}
    if command == 0 and message[16] & 1 and len(message) >= 64 + 64:
        mode, dialect, contexts = struct.unpack_from("<HHH", message, 66)
        capabilities, transact, read, write = struct.unpack_from("<IIII", message, 64 + 24)
        fields |= {"dialect": f"{dialect:#06x}", "security mode": str(mode)}
        fields["capabilities"] = f"{capabilities:#x}"
        fields["max transact/read/write"] = f"{transact}/{read}/{write}"
        fields["negotiate contexts"] = str(contexts)
        fields["security buffer length"] = str(struct.unpack_from("<H", message, 64 + 58)[0])
    return fields


def _smb1_fields(message: bytes) -> Fields:
    status = struct.unpack_from("<I", message, 5)[0]
    fields = {"smb1 command": f"{message[4]:#04x}", "status": f"{status:#010x}"}
    try:
        if message[4] == 0x72 and message[9] & 0x80:
            response = smb1.decode_negotiate_response(message)
            fields |= {"domain": response.domain_name, "server": response.server_name}
        elif message[4] == 0x73 and message[9] & 0x80 and status in (0, 0xC0000016):
            setup = smb1.decode_session_setup_response(message)
            fields |= {"native os": setup.native_os, "native lanman": setup.native_lanman}
    except MalformedMessage:
        pass
    return fields


def _ntlm_fields(frame: bytes) -> Fields:
    at = frame.find(NTLMSSP_CHALLENGE)
    if at < 0:
        return {}
    try:
        challenge = ntlmssp.decode_challenge(frame[at:])
    except MalformedMessage as exc:
        return {"ntlm": f"undecodable: {exc}"}
    fields = {"ntlm target": challenge.target_name}
    for av_id, value in challenge.target_info:
        if av_id in (1, 2, 3, 4, 5):
            fields[f"ntlm {ntlmssp.AvId(av_id).name.lower()}"] = value.decode(
                "utf-16-le", "replace"
            )
    return fields
