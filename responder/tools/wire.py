"""The probe's sans-IO half: the requests a scanner sends, and what the answers say.

Each protocol has a ``*_request`` builder (bytes out, with the transaction
ID, GUID or salt passed in) and an ``interpret_*`` function turning the
answer's bytes into a view of :mod:`responder.tools.result` (the clock comes in
as ``now``). All of it is the project's own codecs, used client-side; nothing
here opens a socket, so every rule is testable with plain bytes.

What is mimicked:

- DNS: a stub resolver's PTR of ``in-addr.arpa`` (RFC 1035 §3.5, RFC 1034
  §5.3.1; ``dig -x``), then A of each name found (does it point back?).
- NBNS: ``nmblookup -A`` / ``nbtstat -A`` / nmap nbstat: a NODE STATUS
  REQUEST for ``*<00>`` (RFC 1002 §4.2.17-18), then ``nmblookup -U ADDR
  NAME#20``: a unicast NAME QUERY (§4.2.12-13) for the <20> name found.
- NBSS: SESSION REQUEST on 139 with a chosen called name (§4.3.2-4), as
  ``smbclient -p 139`` and Windows' redirector ("*SMBSERVER") send it.
- SMB2: NEGOTIATE (MS-SMB2 §2.2.3/§2.2.4) per dialect set, one connection
  each, 3.1.1 with the preauth-integrity and encryption contexts Windows and
  smbprotocol send; then SESSION_SETUP (§2.2.5) with a SPNEGO NegTokenInit
  (RFC 4178) holding an NTLMSSP NEGOTIATE (MS-NLMP §2.2.1.1), the CHALLENGE
  of which (§2.2.1.2) names the server (impacket's getServerName & co.).
- SMB1: nmap smb-os-discovery: NT LM 0.12 NEGOTIATE without extended
  security (MS-CIFS §2.2.4.52: DomainName, ServerName) and an anonymous
  SESSION_SETUP_ANDX (§2.2.4.53: NativeOS, NativeLanMan, PrimaryDomain).
"""

from __future__ import annotations

import datetime
import ipaddress
import uuid
from dataclasses import replace

from protocols._wire import Reader, Writer
from protocols.auth import ntlmssp, spnego
from protocols.dns import message as dns
from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameFlags,
    NameQueryRequest,
    NameQueryResponse,
    NodeStatusRequest,
    NodeStatusResponse,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_name_query_request, encode_node_status_request
from protocols.smb import negotiate as neg
from protocols.smb import smb1, smb2
from protocols.smb.ntstatus import NtStatus
from responder.tools.result import (
    CalledView,
    DialectView,
    NameQueryView,
    NbnsName,
    NbnsView,
    NtlmView,
    Smb1View,
    Status,
)

#: The dialect sets offered, one connection each: what an old, a 3.0 and a current client send.
DIALECT_SETS: tuple[tuple[int, ...], ...] = (
    (neg.Dialect.SMB202,),
    (neg.Dialect.SMB202, neg.Dialect.SMB210, neg.Dialect.SMB300, neg.Dialect.SMB302),
    (
        neg.Dialect.SMB202,
        neg.Dialect.SMB210,
        neg.Dialect.SMB300,
        neg.Dialect.SMB302,
        neg.Dialect.SMB311,
    ),
)
CALLING_NAME = "COZEN-PROBE"
_DIALECT_NAMES = {int(value): name for value, name in neg.DIALECT_NAMES.items()}
_NTLM_FLAGS = (
    ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_UNICODE
    | ntlmssp.NegotiateFlags.NTLMSSP_REQUEST_TARGET
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_NTLM
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_TARGET_INFO
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_VERSION
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_128
    | ntlmssp.NegotiateFlags.NTLMSSP_NEGOTIATE_56
)
_SMB1_FLAGS2 = smb1.Flags2.UNICODE | smb1.Flags2.NT_STATUS | smb1.Flags2.LONG_NAMES
_FILETIME_UNIX_EPOCH = 116_444_736_000_000_000


#: (rcode name, TC flag, the answer section's values of the asked type, as text)
DnsAnswer = tuple[str, bool, tuple[str, ...]]


class WrongAnswer(MalformedMessage):
    """An answer that decodes but does not answer our request (ID, type, command)."""


def _wrong(protocol: str, reason: str) -> WrongAnswer:
    return WrongAnswer(protocol, 0, reason)


# -- DNS ------------------------------------------------------------------------------


def reverse_name(address: str) -> str:
    """``12.0.0.127.in-addr.arpa`` (or ip6.arpa) of ``address``, no trailing dot.

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    return ipaddress.ip_address(address).reverse_pointer


def dns_request(query_id: int, name: str, qtype: dns.RRType) -> bytes:
    """A recursive query (RD=1) with EDNS (1232-byte payload), as ``dig`` sends.

    Raises:
        ValueError: ``name`` is not a valid domain name.
    """
    question = dns.Question(dns.name_from_text(name), qtype)
    header = dns.Header(query_id, rd=True)
    return dns.encode_message(dns.Message(header, (question,), (), (), (dns.Edns().to_record(),)))


def interpret_dns(
    data: bytes, query_id: int, qtype: dns.RRType
) -> tuple[str, bool, tuple[str, ...]]:
    """(rcode name, TC flag, the answer section's ``qtype`` values as text).

    PTR targets come without the trailing dot; CNAMEs are followed implicitly
    (every record of ``qtype`` in the answer counts).

    Raises:
        MalformedMessage: undecodable, or not the answer to ``query_id`` (WrongAnswer).
    """
    message = dns.decode_message(data)
    if message.header.id != query_id or not message.header.qr:
        raise _wrong("dns", f"answer ID {message.header.id:#06x} is not {query_id:#06x}")
    values = tuple(_rdata_text(rr.rdata) for rr in message.answers if rr.rtype == qtype)
    return _rcode_name(message.header.rcode), message.header.tc, values


def _rcode_name(rcode: int) -> str:
    return dns.Rcode(rcode).name if rcode in dns.Rcode._value2member_map_ else str(rcode)


def _rdata_text(rdata: dns.Rdata) -> str:
    if isinstance(rdata, dns.ARdata | dns.AAAARdata):
        return str(rdata.address)
    if isinstance(rdata, dns.NameRdata):
        return dns.name_to_text(rdata.target).rstrip(".").lower()
    return repr(rdata)


# -- NBNS -----------------------------------------------------------------------------


def node_status_request(trn_id: int) -> bytes:
    """NODE STATUS REQUEST for ``*<00>``, as ``nmblookup -A`` sends it."""
    return encode_node_status_request(NodeStatusRequest(trn_id, NetbiosName("*", 0x00)))


def name_query_request(trn_id: int, name: str, suffix: int) -> bytes:
    """Unicast NAME QUERY REQUEST (RD set, B clear), as ``nmblookup -U ADDR NAME`` sends it.

    Raises:
        ValueError: not a NetBIOS name.
    """
    return encode_name_query_request(NameQueryRequest(trn_id, NetbiosName.make(name, suffix)))


def interpret_node_status(data: bytes, trn_id: int) -> NbnsView:
    """The name table and MAC of a NODE STATUS RESPONSE.

    Raises:
        MalformedMessage: undecodable, or not a node status answer to ``trn_id``.
    """
    message = decode_packet(data)
    if not isinstance(message, NodeStatusResponse) or message.trn_id != trn_id:
        raise _wrong("nbns", f"{type(message).__name__} {message.trn_id:#06x} is no node status")
    names = tuple(
        NbnsName(e.name, e.suffix, bool(e.flags & NameFlags.G), _name_flags(e.flags))
        for e in message.names
    )
    mac = message.unit_id.hex(":")
    return NbnsView(Status.ANSWERED, names=names, mac=mac)


def _name_flags(flags: NameFlags) -> tuple[str, ...]:
    ont = {0x0000: "B", 0x2000: "P", 0x4000: "M", 0x6000: "H"}[flags & NameFlags.ONT_H]
    states = (NameFlags.G, NameFlags.DRG, NameFlags.CNF, NameFlags.ACT, NameFlags.PRM)
    return (ont, *(str(s.name) for s in states if flags & s))


def host_name_of(view: NbnsView) -> tuple[str, int] | None:
    """The unique <20> name of a node status table (else its unique <00>), with its suffix."""
    for suffix in (0x20, 0x00):
        for entry in view.names:
            if entry.suffix == suffix and not entry.group:
                return entry.name, suffix
    return None


def interpret_name_query(data: bytes, trn_id: int, name: str) -> NameQueryView:
    """The addresses (or the negative RCODE) of a NAME QUERY RESPONSE.

    Raises:
        MalformedMessage: undecodable, or not a query answer to ``trn_id``.
    """
    message = decode_packet(data)
    if not isinstance(message, NameQueryResponse) or message.trn_id != trn_id:
        raise _wrong("nbns", f"{type(message).__name__} {message.trn_id:#06x} is no query answer")
    addresses = tuple(e.address for e in message.entries)
    return NameQueryView(Status.ANSWERED, name=name, rcode=message.rcode, addresses=addresses)


# -- NBSS -----------------------------------------------------------------------------


def session_request(called: str) -> bytes:
    """SESSION REQUEST for ``called``<20> from ``COZEN-PROBE<00>``.

    Raises:
        ValueError: ``called`` is not a NetBIOS name.
    """
    request = nbss.SessionRequest(NetbiosName.make(called, 0x20), NetbiosName(CALLING_NAME, 0))
    return nbss.encode_session_request(request)


def interpret_session_response(called: str, frame: nbss.Frame) -> CalledView:
    """Positive, or the negative response's code (RFC 1002 §4.3.3-4).

    Raises:
        MalformedMessage: a negative response with a bad payload, or another frame type.
    """
    if frame.type == nbss.FrameType.POSITIVE_RESPONSE:
        return CalledView(called, Status.ANSWERED, accepted=True, answer="positive")
    if frame.type == nbss.FrameType.NEGATIVE_RESPONSE:
        code = nbss.decode_negative_response(frame.payload)
        return CalledView(called, Status.ANSWERED, answer=code.name.lower())
    raise _wrong("nbss", f"{frame.type.name} answers a SESSION REQUEST")


# -- SMB2 -----------------------------------------------------------------------------


def dialect_names(dialects: tuple[int, ...]) -> tuple[str, ...]:
    """``("2.0.2", "3.1.1")`` for known dialects, the hex revision for any other."""
    return tuple(_DIALECT_NAMES.get(d, f"{d:#06x}") for d in dialects)


def _contexts(salt: bytes) -> tuple[neg.NegotiateContext, ...]:
    preauth = b"\x01\x00\x20\x00\x01\x00" + salt  # one algorithm (SHA-512), a 32-byte salt
    ciphers = b"\x02\x00\x02\x00\x01\x00"  # AES-128-GCM, AES-128-CCM
    return (
        neg.NegotiateContext(neg.ContextType.PREAUTH_INTEGRITY_CAPABILITIES, preauth),
        neg.NegotiateContext(neg.ContextType.ENCRYPTION_CAPABILITIES, ciphers),
    )


def smb2_negotiate_request(dialects: tuple[int, ...], client_guid: bytes, salt: bytes) -> bytes:
    """An SMB2 NEGOTIATE (message 0, signing enabled) offering ``dialects``.

    Raises:
        ValueError: ``salt`` is not 32 bytes or ``client_guid`` not 16.
    """
    if len(salt) != 32 or len(client_guid) != 16:
        raise ValueError("the salt takes 32 bytes and the client GUID 16")
    with_contexts = neg.Dialect.SMB311 in dialects
    request = neg.NegotiateRequest(
        header=smb2.Header(command=smb2.Command.NEGOTIATE, credits=1),
        dialects=dialects,
        security_mode=smb2.SecurityMode.SIGNING_ENABLED,
        capabilities=0,
        client_guid=client_guid,
        contexts=_contexts(salt) if with_contexts else (),
    )
    return neg.encode_negotiate_request(request)


def interpret_negotiate(message: bytes, offered: tuple[int, ...], now: float) -> DialectView:
    """Dialect, ServerGuid, SecurityMode, capabilities and clock skew of a NEGOTIATE answer.

    A non-success status is an answer too (``detail`` holds it).

    Raises:
        MalformedMessage: undecodable, or not a NEGOTIATE response.
    """
    names = dialect_names(offered)
    header = smb2.decode_header(message)
    if header.command != smb2.Command.NEGOTIATE:
        raise _wrong("smb2", f"command {header.command:#06x} answers NEGOTIATE")
    if header.status != NtStatus.SUCCESS:
        return DialectView(names, Status.ANSWERED, detail=status_name(header.status))
    response = neg.decode_negotiate_response(message)
    seconds = filetime_seconds(response.system_time)
    return DialectView(
        offered=names,
        status=Status.ANSWERED,
        dialect=dialect_names((response.dialect_revision,))[0],
        server_guid=str(uuid.UUID(bytes_le=response.server_guid)),
        security_mode=_flag_names(response.security_mode),
        capabilities=_flag_names(response.capabilities),
        system_time=_iso(seconds),
        skew_seconds=None if seconds is None else round(seconds - now, 3) + 0.0,
    )


def _flag_names(flags: smb2.SecurityMode | neg.Capabilities) -> tuple[str, ...]:
    return tuple(str(f.name) for f in type(flags) if f & flags)


def filetime_seconds(value: int) -> float | None:
    """Unix seconds of a FILETIME, or None for 0 (a server hiding its clock)."""
    return None if value == 0 else (value - _FILETIME_UNIX_EPOCH) / 10_000_000


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ""
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"unrepresentable ({seconds:.0f} s)"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def status_name(status: int) -> str:
    """``STATUS_LOGON_FAILURE`` style name of an NTSTATUS, or its hex value."""
    if status in NtStatus._value2member_map_:
        return f"STATUS_{NtStatus(status).name}"
    return f"{status:#010x}"


def ntlm_negotiate_blob() -> bytes:
    """SPNEGO NegTokenInit carrying an NTLMSSP NEGOTIATE (impacket's and smbclient's first leg)."""
    token = ntlmssp.encode_negotiate(
        ntlmssp.NegotiateMessage(_NTLM_FLAGS, "", "", ntlmssp.encode_version(10, 0, 20348))
    )
    return spnego.encode_neg_token_init((spnego.OID_NTLMSSP,), token)


def smb2_session_setup_request(message_id: int) -> bytes:
    """SESSION_SETUP carrying :func:`ntlm_negotiate_blob`."""
    request = smb2.SessionSetupRequest(
        header=smb2.Header(command=smb2.Command.SESSION_SETUP, credits=1, message_id=message_id),
        flags=0,
        security_mode=smb2.SecurityMode.SIGNING_ENABLED,
        capabilities=0,
        channel=0,
        previous_session_id=0,
        security_buffer=ntlm_negotiate_blob(),
    )
    return smb2.encode_session_setup_request(request)


def interpret_session_setup(message: bytes) -> NtlmView:
    """The target info of the CHALLENGE in an SMB2 SESSION_SETUP answer.

    Raises:
        MalformedMessage: undecodable SMB2, SPNEGO or NTLMSSP, or no CHALLENGE.
    """
    header = smb2.decode_header(message)
    if header.status != NtStatus.MORE_PROCESSING_REQUIRED:
        return NtlmView(Status.ANSWERED, detail=f"no CHALLENGE: {status_name(header.status)}")
    blob = smb2.decode_session_setup_response(message).security_buffer
    return interpret_challenge_blob(blob)


def interpret_challenge_blob(blob: bytes) -> NtlmView:
    """Names and OS version of the NTLMSSP CHALLENGE in a SPNEGO negTokenResp (or bare).

    Raises:
        MalformedMessage: undecodable SPNEGO or NTLMSSP, or no CHALLENGE token.
    """
    token = spnego.decode_client_token(blob)  # a server's negTokenResp has the client's shape
    if isinstance(token, spnego.NegTokenInit):
        raise _wrong("spnego", "a NegTokenInit where a negTokenResp belongs")
    if isinstance(token, spnego.NegTokenResp):
        if token.response_token is None:
            raise _wrong("spnego", "negTokenResp without a response token")
        token = token.response_token
    challenge = ntlmssp.decode_challenge(token)
    info = {av_id: value for av_id, value in challenge.target_info}
    return NtlmView(
        status=Status.ANSWERED,
        target_name=challenge.target_name,
        nb_computer_name=_av(info, ntlmssp.AvId.NB_COMPUTER_NAME),
        nb_domain_name=_av(info, ntlmssp.AvId.NB_DOMAIN_NAME),
        dns_computer_name=_av(info, ntlmssp.AvId.DNS_COMPUTER_NAME),
        dns_domain_name=_av(info, ntlmssp.AvId.DNS_DOMAIN_NAME),
        dns_tree_name=_av(info, ntlmssp.AvId.DNS_TREE_NAME),
        os_version=_version_text(challenge.version),
    )


def _av(info: dict[int, bytes], av_id: ntlmssp.AvId) -> str:
    return info.get(av_id, b"").decode("utf-16-le", errors="replace")


def _version_text(version: bytes | None) -> str:
    if not version or len(version) < 4:
        return ""
    return f"{version[0]}.{version[1]}.{int.from_bytes(version[2:4], 'little')}"


# -- SMB1 -----------------------------------------------------------------------------


def _smb1_fields(command: smb1.Command) -> smb1.Header:
    return smb1.Header(command, flags2=_SMB1_FLAGS2, pid_low=0xFEFF, mid=1)


def smb1_negotiate_request() -> bytes:
    """NT LM 0.12 only, without extended security: the answer names server and domain."""
    request = smb1.NegotiateRequest(_smb1_fields(smb1.Command.NEGOTIATE), (smb1.NT_LM_012,))
    return smb1.encode_negotiate_request(request)


def smb1_anonymous_setup_request() -> bytes:
    """SESSION_SETUP_ANDX, WordCount 13, empty account and passwords (a null session)."""
    writer = Writer()
    header = smb1.encode_error_response(_smb1_fields(smb1.Command.SESSION_SETUP_ANDX))
    writer.write(header[: smb1.HEADER_SIZE])  # the codec's header writer
    writer.u8(13)
    writer.write(b"\xff\x00\x00\x00")  # no AndX command
    writer.u16le(16644)  # MaxBufferSize
    writer.u16le(50)  # MaxMpxCount
    writer.u16le(0)  # VcNumber
    writer.u32le(0)  # SessionKey
    writer.u16le(0)  # OEM password length
    writer.u16le(0)  # Unicode password length
    writer.u32le(0)  # Reserved
    writer.u32le(smb1.Capabilities.UNICODE | smb1.Capabilities.NT_SMBS | smb1.Capabilities.STATUS32)
    data = Writer()
    data.write(b"\x00")  # pad to 2 (the data block starts at an odd offset)
    for text in ("", "", "Unix", "Cozen probe"):  # account, domain, native OS, native LAN manager
        data.write(text.encode("utf-16-le") + b"\x00\x00")
    writer.u16le(len(data))
    writer.write(data.getvalue())
    return writer.getvalue()


def interpret_smb1_negotiate(message: bytes) -> Smb1View:
    """Dialect, DomainName and ServerName of an NT LM 0.12 NEGOTIATE answer.

    Raises:
        MalformedMessage: undecodable, or an error status / no dialect chosen.
    """
    header = smb1.decode_header(message)
    if header.status != NtStatus.SUCCESS:
        return Smb1View(Status.ANSWERED, detail=f"NEGOTIATE: {status_name(header.status)}")
    words = Reader(message, smb1.PROTOCOL, start=smb1.HEADER_SIZE)
    if words.u8() == 1:  # MS-CIFS §2.2.4.52.2: WordCount 1, DialectIndex 0xFFFF: none taken
        return Smb1View(Status.ANSWERED, detail=f"no dialect chosen ({words.u16le():#x}): SMB1 off")
    response = smb1.decode_negotiate_response(message)
    if response.dialect_index != 0:
        return Smb1View(Status.ANSWERED, detail=f"no dialect chosen ({response.dialect_index:#x})")
    return Smb1View(
        Status.ANSWERED,
        dialect=smb1.NT_LM_012,
        server_name=response.server_name,
        domain_name=response.domain_name,
    )


def interpret_smb1_setup(view: Smb1View, message: bytes) -> Smb1View:
    """``view`` with the native OS / LAN manager strings of a SESSION_SETUP_ANDX answer.

    Raises:
        MalformedMessage: undecodable answer.
    """
    header = smb1.decode_header(message)
    status = status_name(header.status)
    if header.status != NtStatus.SUCCESS:
        return replace(view, setup_status=status)
    words = message[smb1.HEADER_SIZE] if len(message) > smb1.HEADER_SIZE else 0
    decode = smb1.decode_session_setup_response
    if words == 3:
        decode = smb1.decode_plain_session_setup_response
    response = decode(message)
    return replace(
        view,
        setup_status=status,
        native_os=response.native_os,
        native_lanman=response.native_lanman,
        primary_domain=response.primary_domain,
    )
