"""One SMB server connection: NBSS framing and SMB1/SMB2 command dispatch (sans-IO).

Theory of operation
-------------------
:class:`SmbSession` is fed the bytes of one TCP connection and returns the
bytes to send, like h11's ``Connection``.  It never authenticates anyone: it
presents the node's identity in NEGOTIATE (MS-SMB2 §2.2.4; MS-CIFS
§2.2.4.52.2 / MS-SMB §2.2.4.5.2) and in the NTLMSSP CHALLENGE
(MS-NLMP §2.2.1.2), then fails the AUTHENTICATE leg.

Frames come out of the NBSS framer (RFC 1002 §4.3 on 139, the direct TCP
header of MS-SMB2 §2.1 on 445).  A SESSION MESSAGE is SMB2 or SMB1 by its
ProtocolId; each message is named as an :class:`~protocols.smb._state.Event`
and answered.  The work is split by role:

- :mod:`protocols.smb._state` holds the connection states, ``TRANSITIONS``
  and the rules (what each state accepts, what closes);
- :mod:`protocols.smb._auth` answers SESSION_SETUP security blobs and keeps
  the session IDs of the connection;
- this module frames replies, builds their headers (credits granted as
  MS-SMB2 §3.3.1.2 allows, at most ``_MAX_CREDITS``), builds the NEGOTIATE
  responses and sends every other command the status the rules give it.

Cost: each frame is answered with bounded work (every decoder below has its
budget), and one :meth:`SmbSession.receive_data` call answers at most
:data:`MAX_BATCH` frames, so a segment of 16,384 keep-alives or a thousand
pipelined ECHOs cannot hold the caller for longer than one batch.  The rest
stays buffered and :attr:`SmbSession.pending` says so; the caller stops
reading and calls ``receive_data(b"")`` again on its next turn.  A client
rarely has that many requests in flight: it spends a credit per SMB2 request
(MS-SMB2 §3.2.4.1.5) and may have MaxMpxCount (50) SMB1 requests pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, TypeVar

from protocols.auth import ntlmssp, spnego
from protocols.auth.ntlmssp import NtlmIdentity
from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.smb import _state, smb1, smb2, windows
from protocols.smb import negotiate as neg
from protocols.smb._auth import Authenticator, SessionTable, TooManySessions
from protocols.smb._state import Event, State
from protocols.smb.counters import NT_LM_012, REFUSED, SmbCounters
from protocols.smb.ntstatus import NtStatus
from protocols.smb.smb2 import Command, HeaderFlags
from protocols.smb.windows import WindowsServer, windows_server

DEFAULT_NATIVE_OS: Final = "Windows Server 2022 Standard 20348"
DEFAULT_NATIVE_LANMAN: Final = "Windows Server 2022 Standard 6.3"
_SERVER_SUFFIX: Final = 0x20
_WINDOWS_SERVER_2022: Final = windows_server(20348)
_MAX_CREDITS: Final = 64
MAX_BATCH: Final = 16
"""Frames answered by one :meth:`SmbSession.receive_data` call."""
_H = TypeVar("_H", smb1.Header, smb2.Header)


@dataclass(frozen=True, slots=True)
class SmbIdentity:
    """What one node presents over SMB.  ``server_guid`` is 16 little-endian GUID bytes.

    ``accepted_called_names`` are the NBSS called names answered on 139
    (compared without letter case): the Cozen name, "*SMBSERVER", "*SMBSERV"
    and the management address text.  ``windows`` is the Windows Server release
    whose NEGOTIATE details are presented (:mod:`protocols.smb.windows`).
    ``null_session`` lets an anonymous logon succeed as a null session (SMB1
    with or without extended security, SMB2), on which every later command but
    LOGOFF and ECHO is refused; off, anonymous logons get ACCESS_DENIED.
    """

    ntlm: NtlmIdentity
    server_guid: bytes
    workgroup: str
    cozen_name: str
    accepted_called_names: frozenset[str]
    windows: WindowsServer = _WINDOWS_SERVER_2022
    smb1: bool = True
    max_dialect: int = neg.Dialect.SMB311
    native_os: str = DEFAULT_NATIVE_OS
    native_lanman: str = DEFAULT_NATIVE_LANMAN
    null_session: bool = True


def default_called_names(cozen_name: str, management_address: str) -> frozenset[str]:
    """The called names a Windows server accepts on 139, for ``accepted_called_names``."""
    return frozenset({cozen_name.upper(), "*SMBSERVER", "*SMBSERV", management_address})


class _Close(Exception):
    """Raised internally to stop and close the connection."""


class SmbSession:
    """One TCP connection on 139 (``netbios=True``) or 445."""

    def __init__(
        self,
        identity: SmbIdentity,
        *,
        netbios: bool,
        random_bytes: Callable[[int], bytes],
        clock: Callable[[], float],
        max_message_size: int = 65536,
        counters: SmbCounters | None = None,
    ) -> None:
        """``counters``: where to count NEGOTIATE and SESSION_SETUP answers (the caller's)."""
        self.identity = identity
        self.counters = SmbCounters() if counters is None else counters
        self.netbios = netbios
        self.state = _state.initial(netbios=netbios)
        self._random = random_bytes
        self._clock = clock
        self._framer = nbss.Framer(direct=not netbios, max_message_size=max_message_size)
        self._auth = Authenticator(
            identity.ntlm,
            null_session=identity.null_session,
            random_bytes=random_bytes,
            clock=clock,
        )
        self._sessions = SessionTable(random_bytes)
        self._called = frozenset(n.upper() for n in identity.accepted_called_names)

    @property
    def closed(self) -> bool:
        """True once the connection must be closed after sending what was returned."""
        return self.state is State.CLOSED

    @property
    def pending(self) -> bool:
        """True when a received frame waits: call ``receive_data(b"")`` to answer it."""
        return not self.closed and self._framer.ready

    def receive_data(self, data: bytes) -> bytes:
        """Consume received bytes; return the bytes to send (maybe ``b""``).

        Answers at most :data:`MAX_BATCH` frames; see :attr:`pending`.

        Raises:
            Nothing: malformed input closes the connection (see :attr:`closed`).
        """
        if self.closed:
            return b""
        self._framer.feed(data)
        return b"".join(self._answer_batch())

    def _answer_batch(self) -> list[bytes]:
        out: list[bytes] = []
        for _ in range(MAX_BATCH):
            if self.closed:
                break
            try:
                frame = self._framer.next_frame()
                if frame is None:
                    break
                out.append(self._on_frame(frame))
            except (MalformedMessage, TooManySessions, _Close):
                self.state = State.CLOSED
        return out

    def _advance(self, event: Event) -> None:
        next_state = _state.advance(self.state, event)
        if next_state is None:
            raise _Close
        self.state = next_state

    def _frame(self, payload: bytes) -> bytes:
        if not payload:  # nothing to answer (CANCEL, ECHO with EchoCount 0)
            return b""
        return nbss.encode_frame(nbss.FrameType.SESSION_MESSAGE, payload, direct=not self.netbios)

    def _on_frame(self, frame: nbss.Frame) -> bytes:
        if frame.type is nbss.FrameType.KEEP_ALIVE:
            return b""
        if frame.type is nbss.FrameType.SESSION_REQUEST:
            return self._on_session_request(frame.payload)
        if self.state is State.AWAIT_SESSION_REQUEST:
            self._advance(Event.NBSS_PREMATURE)
            return nbss.encode_negative_response(nbss.NegativeCode.UNSPECIFIED)
        if frame.type is not nbss.FrameType.SESSION_MESSAGE:
            raise _Close
        message = frame.payload
        if message.startswith(smb2.PROTOCOL_ID):
            return self._frame(self._on_smb2(message))
        if message.startswith(smb1.PROTOCOL_ID):
            return self._frame(self._on_smb1(message))
        raise _Close

    def _on_session_request(self, payload: bytes) -> bytes:
        called = nbss.decode_session_request(payload).called
        if called.suffix == _SERVER_SUFFIX and called.name.upper() in self._called:
            self._advance(Event.NBSS_ACCEPTED)
            return nbss.encode_positive_response()
        self._advance(Event.NBSS_REFUSED)
        return nbss.encode_negative_response(nbss.NegativeCode.CALLED_NAME_NOT_PRESENT)

    # -- SMB2 ----------------------------------------------------------------

    def _on_smb2(self, message: bytes) -> bytes:
        header = smb2.decode_header(message)
        if header.flags & HeaderFlags.SERVER_TO_REDIR or header.next_command:
            raise _Close
        if header.command == Command.NEGOTIATE:
            return self._smb2_negotiate(message, header)
        self._advance(Event.SMB2_REQUEST)
        if header.command == Command.SESSION_SETUP:
            return self._smb2_session_setup(message, header)
        if header.command not in Command._value2member_map_:
            return self._smb2_error(header, NtStatus.INVALID_PARAMETER)
        if self._sessions.is_null(header.session_id) and header.command != Command.CANCEL:
            return self._smb2_on_null_session(header)
        if header.command == Command.ECHO:
            return smb2.encode_echo_response(self._reply(header, NtStatus.SUCCESS))
        if header.command == Command.CANCEL:
            return b""
        return self._smb2_error(header, NtStatus.USER_SESSION_DELETED)

    def _smb2_on_null_session(self, header: smb2.Header) -> bytes:
        """ECHO and LOGOFF succeed; TREE_CONNECT is denied (MS-SMB2 §3.3.5.7);
        the rest names a tree that does not exist (§3.3.5.2.11)."""
        if header.command == Command.ECHO:
            return smb2.encode_echo_response(self._reply(header, NtStatus.SUCCESS))
        if header.command == Command.LOGOFF:
            self._sessions.logoff(header.session_id)
            return smb2.encode_logoff_response(self._reply(header, NtStatus.SUCCESS))
        if header.command == Command.TREE_CONNECT:
            return self._smb2_error(header, NtStatus.ACCESS_DENIED)
        return self._smb2_error(header, NtStatus.NETWORK_NAME_DELETED)

    def _reply(
        self, request: smb2.Header, status: int, session_id: int | None = None
    ) -> smb2.Header:
        return smb2.Header(
            command=request.command,
            status=status,
            credit_charge=request.credit_charge,
            credits=max(1, min(request.credits, _MAX_CREDITS)),
            flags=HeaderFlags.SERVER_TO_REDIR | (request.flags & HeaderFlags.PRIORITY_MASK),
            message_id=request.message_id,
            process_id=request.process_id,
            tree_id=request.tree_id,
            session_id=request.session_id if session_id is None else session_id,
        )

    def _smb2_error(self, request: smb2.Header, status: int) -> bytes:
        return smb2.encode_error_response(self._reply(request, status))

    def _smb2_negotiate(self, message: bytes, header: smb2.Header) -> bytes:
        try:
            request = neg.decode_negotiate_request(message)
        except MalformedMessage:
            self._advance(Event.SMB2_NEGOTIATE_MALFORMED)
            return self._smb2_error(header, NtStatus.INVALID_PARAMETER)
        dialect = neg.choose_dialect(request.dialects, self.identity.max_dialect)
        contexts: tuple[neg.NegotiateContext, ...] = ()
        status: int = NtStatus.NOT_SUPPORTED
        if dialect == neg.Dialect.SMB311:
            try:
                answered = self.identity.windows.contexts
                contexts = neg.response_contexts(request, self._random(32), answered)
            except MalformedMessage as exc:
                dialect, status = None, exc.answer_hint or NtStatus.INVALID_PARAMETER
        if dialect is None:
            self._advance(Event.NEGOTIATE_REFUSED)
            self.counters.negotiated(REFUSED)
            return self._smb2_error(header, status)
        self._advance(Event.SMB2_NEGOTIATE)
        reply = self._reply(header, NtStatus.SUCCESS)
        return self._smb2_negotiate_response(reply, dialect, contexts)

    def _smb2_negotiate_response(
        self, header: smb2.Header, dialect: int, contexts: tuple[neg.NegotiateContext, ...] = ()
    ) -> bytes:
        self.counters.negotiated(dialect)
        row = self.identity.windows
        size = row.max_sizes(dialect)
        response = neg.NegotiateResponse(
            header=header,
            security_mode=row.security_mode,
            dialect_revision=dialect,
            server_guid=self.identity.server_guid,
            capabilities=row.capabilities(dialect, multi_credit=not self.netbios),
            max_transact_size=size,
            max_read_size=size,
            max_write_size=size,
            system_time=ntlmssp.filetime(self._clock()),
            server_start_time=row.server_start_time,
            security_buffer=spnego.encode_neg_token_init2(),
            contexts=contexts,
        )
        return neg.encode_negotiate_response(response)

    def _smb2_session_setup(self, message: bytes, header: smb2.Header) -> bytes:
        try:
            request = smb2.decode_session_setup_request(message)
        except MalformedMessage:
            return self._setup_refused(NtStatus.INVALID_PARAMETER, self._smb2_error, header)
        session_id = header.session_id
        if session_id and not self._sessions.known(session_id):
            return self._setup_refused(NtStatus.USER_SESSION_DELETED, self._smb2_error, header)
        session_id = session_id or self._sessions.new_id(8)
        result = self._auth.step(request.security_buffer)
        self.counters.session_setup(result.status, result.token, null_session=result.null_session)
        self._sessions.settle(session_id, result)
        reply = self._reply(header, result.status, session_id)
        if result.failed:
            return smb2.encode_error_response(reply)
        flags = smb2.SessionFlags.IS_NULL if result.null_session else smb2.SessionFlags(0)
        response = smb2.SessionSetupResponse(
            header=reply, session_flags=flags, security_buffer=result.token
        )
        return smb2.encode_session_setup_response(response)

    def _setup_refused(self, status: int, error: Callable[[_H, int], bytes], header: _H) -> bytes:
        """A SESSION_SETUP refused before authentication: counted, then the error."""
        self.counters.session_setup(status, b"", null_session=False)
        return error(header, status)

    # -- SMB1 ----------------------------------------------------------------

    def _on_smb1(self, message: bytes) -> bytes:
        # The REPLY flag is not checked: nmap sends requests with it set.
        header = smb1.decode_header(message)
        if header.command == smb1.Command.NEGOTIATE:
            return self._smb1_negotiate(message, header)
        self._advance(Event.SMB1_REQUEST)
        if header.command == smb1.Command.SESSION_SETUP_ANDX:
            return self._smb1_session_setup(message, header)
        if self._sessions.is_null(header.uid):
            return self._smb1_on_null_session(message, header)
        return self._smb1_error(header, NtStatus.SMB_BAD_UID)

    def _smb1_on_null_session(self, message: bytes, header: smb1.Header) -> bytes:
        if header.command == smb1.Command.LOGOFF_ANDX:
            self._sessions.logoff(header.uid)
            return smb1.encode_logoff_response(self._smb1_reply(header, NtStatus.SUCCESS))
        if header.command == smb1.Command.TREE_CONNECT_ANDX:
            return self._smb1_error(header, NtStatus.ACCESS_DENIED)
        if header.command != smb1.Command.ECHO:
            return self._smb1_error(header, NtStatus.SMB_BAD_TID)
        try:
            echo = smb1.decode_echo_request(message)
        except MalformedMessage:
            return self._smb1_error(header, NtStatus.INVALID_PARAMETER)
        if echo.echo_count == 0:
            return b""
        return smb1.encode_echo_response(self._smb1_reply(header, NtStatus.SUCCESS), 1, echo.data)

    def _smb1_reply(self, request: smb1.Header, status: int, uid: int | None = None) -> smb1.Header:
        keep = smb1.Flags2.UNICODE | smb1.Flags2.EXTENDED_SECURITY | smb1.Flags2.LONG_NAMES
        path_flags = smb1.Flags.CASE_INSENSITIVE | smb1.Flags.CANONICALIZED_PATHS
        return smb1.Header(
            command=request.command,
            status=status,
            # Windows echoes the request's path flags (nmap's SMBProgNeg 0x08 gets 0x88)
            flags=smb1.Flags.REPLY | (request.flags & path_flags),
            flags2=(request.flags2 & keep) | smb1.Flags2.NT_STATUS | smb1.Flags2.IS_LONG_NAME,
            pid_high=request.pid_high,
            tid=request.tid,
            pid_low=request.pid_low,
            uid=request.uid if uid is None else uid,
            mid=request.mid,
        )

    def _smb1_error(self, request: smb1.Header, status: int) -> bytes:
        return smb1.encode_error_response(self._smb1_reply(request, status))

    def _smb1_negotiate(self, message: bytes, header: smb1.Header) -> bytes:
        dialects = smb1.decode_negotiate_request(message).dialects
        smb2_allowed = self.identity.max_dialect >= neg.Dialect.SMB202
        if smb2_allowed and smb1.SMB2_WILDCARD in dialects:
            return self._smb1_to_smb2(Event.SMB1_NEGOTIATE_TO_WILDCARD, neg.Dialect.WILDCARD)
        if smb2_allowed and smb1.SMB2_002 in dialects:
            return self._smb1_to_smb2(Event.SMB1_NEGOTIATE_TO_SMB202, neg.Dialect.SMB202)
        if not self.identity.smb1 or smb1.NT_LM_012 not in dialects:
            self.counters.negotiated(REFUSED)
            raise _Close
        self._advance(Event.SMB1_NEGOTIATE_NT1)
        self.counters.negotiated(NT_LM_012)
        return self._smb1_negotiate_response(header, dialects.index(smb1.NT_LM_012))

    def _smb1_to_smb2(self, event: Event, dialect: int) -> bytes:
        self._advance(event)
        header = smb2.Header(
            command=Command.NEGOTIATE, credits=1, flags=HeaderFlags.SERVER_TO_REDIR
        )
        return self._smb2_negotiate_response(header, dialect)

    def _smb1_negotiate_response(self, header: smb1.Header, index: int) -> bytes:
        """The NT LM 0.12 answer a Windows server sends (MS-SMB §2.2.4.5.2).

        Flags2 is the request's with NT_STATUS (Windows mirrors the client's
        UNICODE choice; DomainName and ServerName are UTF-16 either way, as
        nmap's Windows patterns show), Flags and Capabilities are Windows'.
        """
        reply = self._smb1_reply(header, NtStatus.SUCCESS)
        reply = replace(reply, flags2=header.flags2 | smb1.Flags2.NT_STATUS)
        now = ntlmssp.filetime(self._clock())
        fields = replace(_SMB1_NEGOTIATE, header=reply, dialect_index=index, system_time=now)
        if header.flags2 & smb1.Flags2.EXTENDED_SECURITY:
            return smb1.encode_negotiate_response(
                replace(
                    fields,
                    capabilities=_SMB1_CAPABILITIES | smb1.Capabilities.EXTENDED_SECURITY,
                    server_guid=self.identity.server_guid,
                    security_blob=spnego.encode_neg_token_init2(),
                )
            )
        return smb1.encode_negotiate_response(
            replace(
                fields,
                challenge=self._random(8),
                domain_name=self.identity.workgroup,
                server_name=self.identity.cozen_name,
            )
        )

    def _smb1_session_setup(self, message: bytes, header: smb1.Header) -> bytes:
        try:
            request = smb1.decode_session_setup_request(message)
        except MalformedMessage:
            return self._setup_refused(NtStatus.INVALID_PARAMETER, self._smb1_error, header)
        if request.security_blob is None:
            return self._smb1_plain_session_setup(request)
        uid = header.uid
        if uid and not self._sessions.known(uid):
            return self._setup_refused(NtStatus.SMB_BAD_UID, self._smb1_error, header)
        uid = uid or self._sessions.new_id(2)
        result = self._auth.step(request.security_blob)
        self.counters.session_setup(result.status, result.token, null_session=result.null_session)
        self._sessions.settle(uid, result)
        reply = self._smb1_reply(header, result.status, uid)
        if result.failed:
            return smb1.encode_error_response(reply)
        return smb1.encode_session_setup_response(self._smb1_setup_response(reply, result.token))

    def _smb1_plain_session_setup(self, request: smb1.SessionSetupRequest) -> bytes:
        passwords = request.oem_password + request.unicode_password
        result = self._auth.plain(request.account_name, passwords)
        self.counters.session_setup(result.status, result.token, null_session=result.null_session)
        if result.failed:
            return self._smb1_error(request.header, result.status)
        uid = self._sessions.new_id(2)
        self._sessions.settle(uid, result)
        reply = self._smb1_reply(request.header, result.status, uid)
        return smb1.encode_plain_session_setup_response(self._smb1_setup_response(reply, b""))

    def _smb1_setup_response(self, reply: smb1.Header, blob: bytes) -> smb1.SessionSetupResponse:
        return smb1.SessionSetupResponse(
            header=reply,
            action=0,
            security_blob=blob,
            native_os=self.identity.native_os,
            native_lanman=self.identity.native_lanman,
            primary_domain=self.identity.workgroup,
        )


_SMB1_CAPABILITIES: Final = smb1.Capabilities(windows.SMB1_CAPABILITIES)
#: The fixed fields of the NT LM 0.12 NEGOTIATE response (MS-CIFS §2.2.4.52.2).
_SMB1_NEGOTIATE: Final = smb1.NegotiateResponse(
    header=smb1.Header(smb1.Command.NEGOTIATE),
    dialect_index=0,
    security_mode=smb1.SecurityMode.USER_SECURITY | smb1.SecurityMode.ENCRYPT_PASSWORDS,
    max_mpx_count=windows.SMB1_MAX_MPX_COUNT,
    max_number_vcs=1,
    max_buffer_size=windows.SMB1_MAX_BUFFER_SIZE,
    max_raw_size=windows.SMB1_MAX_RAW_SIZE,
    session_key=0,
    capabilities=_SMB1_CAPABILITIES,
    system_time=0,
    server_time_zone=0,
)
