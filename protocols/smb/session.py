"""Per-connection SMB state machine: NBSS, NEGOTIATE, SESSION_SETUP (sans-IO).

Theory of operation
-------------------
:class:`SmbSession` is fed the bytes of one TCP connection and returns the
bytes to send, like h11's ``Connection``.  It never authenticates anyone: it
presents the node's identity in NEGOTIATE and in the NTLMSSP CHALLENGE
(MS-NLMP §2.2.1.2), then fails the AUTHENTICATE leg.

Connection states, their transitions and the rules behind them (NBSS
SESSION REQUEST, NEGOTIATE, SESSION_SETUP, null sessions, what closes) live in
:mod:`protocols.smb._state`; this module only names the event each frame is
and lets ``_state.advance`` decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from protocols.auth import ntlmssp, spnego
from protocols.auth.ntlmssp import NtlmIdentity
from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.smb import _state, smb1, smb2
from protocols.smb import negotiate as neg
from protocols.smb._state import Event, State
from protocols.smb.ntstatus import NtStatus
from protocols.smb.smb2 import Command, HeaderFlags

DEFAULT_NATIVE_OS: Final = "Windows Server 2022 Standard 20348"
DEFAULT_NATIVE_LANMAN: Final = "Windows Server 2022 Standard 6.3"
_SERVER_SUFFIX: Final = 0x20
_MAX_CREDITS: Final = 64
MAX_SESSIONS: Final = 16


@dataclass(frozen=True, slots=True)
class SmbIdentity:
    """What one node presents over SMB.  ``server_guid`` is 16 little-endian GUID bytes.

    ``accepted_called_names`` are the NBSS called names answered on 139
    (compared without letter case): the Cozen name, "*SMBSERVER", "*SMBSERV"
    and the management address text.  ``boot_time`` is a FILETIME.
    ``null_session`` lets an anonymous logon succeed as a null session (SMB1
    with or without extended security, SMB2), on which every later command but
    LOGOFF and ECHO is refused; off, anonymous logons get ACCESS_DENIED.
    """

    ntlm: NtlmIdentity
    server_guid: bytes
    workgroup: str
    cozen_name: str
    accepted_called_names: frozenset[str]
    boot_time: int
    smb1: bool = True
    max_dialect: int = neg.Dialect.SMB311
    native_os: str = DEFAULT_NATIVE_OS
    native_lanman: str = DEFAULT_NATIVE_LANMAN
    null_session: bool = True


def default_called_names(cozen_name: str, management_address: str) -> frozenset[str]:
    """The called names a Windows server accepts on 139, for ``accepted_called_names``."""
    return frozenset({cozen_name.upper(), "*SMBSERVER", "*SMBSERV", management_address})


@dataclass(frozen=True, slots=True)
class _AuthResult:
    status: int
    token: bytes
    finished: bool
    null_session: bool = False


_LOGON_FAILURE: Final = _AuthResult(NtStatus.LOGON_FAILURE, b"", True)


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
    ) -> None:
        self.identity = identity
        self.netbios = netbios
        self.state = _state.initial(netbios=netbios)
        self._random = random_bytes
        self._clock = clock
        self._framer = nbss.Framer(direct=not netbios, max_message_size=max_message_size)
        self._sessions: set[int] = set()  # authentication in progress
        self._null: set[int] = set()  # established null sessions
        self._called = frozenset(n.upper() for n in identity.accepted_called_names)

    @property
    def closed(self) -> bool:
        """True once the connection must be closed after sending what was returned."""
        return self.state is State.CLOSED

    def receive_data(self, data: bytes) -> bytes:
        """Consume received bytes; return the bytes to send (maybe ``b""``).

        Raises:
            Nothing: malformed input closes the connection (see :attr:`closed`).
        """
        if self.closed:
            return b""
        self._framer.feed(data)
        out: list[bytes] = []
        while not self.closed:
            try:
                frame = self._framer.next_frame()
                if frame is None:
                    break
                out.append(self._on_frame(frame))
            except (MalformedMessage, _Close):
                self.state = State.CLOSED
        return b"".join(out)

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
        if header.session_id in self._null and header.command != Command.CANCEL:
            return self._smb2_on_null_session(header)
        if header.command == Command.ECHO:
            return smb2.encode_echo_response(self._reply(header, NtStatus.SUCCESS))
        if header.command == Command.CANCEL:
            return b""
        if header.command not in Command._value2member_map_:
            return smb2.encode_error_response(self._reply(header, NtStatus.INVALID_PARAMETER))
        return smb2.encode_error_response(self._reply(header, NtStatus.USER_SESSION_DELETED))

    def _smb2_on_null_session(self, header: smb2.Header) -> bytes:
        if header.command == Command.ECHO:
            return smb2.encode_echo_response(self._reply(header, NtStatus.SUCCESS))
        if header.command == Command.LOGOFF:
            self._null.discard(header.session_id)
            return smb2.encode_logoff_response(self._reply(header, NtStatus.SUCCESS))
        return smb2.encode_error_response(self._reply(header, NtStatus.ACCESS_DENIED))

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

    def _smb2_negotiate(self, message: bytes, header: smb2.Header) -> bytes:
        try:
            request = neg.decode_negotiate_request(message)
        except MalformedMessage:
            self._advance(Event.SMB2_NEGOTIATE_MALFORMED)
            return smb2.encode_error_response(self._reply(header, NtStatus.INVALID_PARAMETER))
        dialect = neg.choose_dialect(request.dialects, self.identity.max_dialect)
        contexts: tuple[neg.NegotiateContext, ...] = ()
        status: int = NtStatus.NOT_SUPPORTED
        if dialect == neg.Dialect.SMB311:
            try:
                contexts = neg.response_contexts(request, self._random(32))
            except MalformedMessage as exc:
                dialect, status = None, exc.answer_hint or NtStatus.INVALID_PARAMETER
        if dialect is None:
            self._advance(Event.NEGOTIATE_REFUSED)
            return smb2.encode_error_response(self._reply(header, status))
        self._advance(Event.SMB2_NEGOTIATE)
        return self._smb2_negotiate_response(
            self._reply(header, NtStatus.SUCCESS), dialect, contexts
        )

    def _smb2_negotiate_response(
        self, header: smb2.Header, dialect: int, contexts: tuple[neg.NegotiateContext, ...] = ()
    ) -> bytes:
        size = neg.max_sizes(dialect)
        response = neg.NegotiateResponse(
            header=header,
            security_mode=smb2.SecurityMode.SIGNING_ENABLED,
            dialect_revision=dialect,
            server_guid=self.identity.server_guid,
            capabilities=neg.server_capabilities(dialect),
            max_transact_size=size,
            max_read_size=size,
            max_write_size=size,
            system_time=ntlmssp.filetime(self._clock()),
            server_start_time=self.identity.boot_time,
            security_buffer=spnego.encode_neg_token_init2(),
            contexts=contexts,
        )
        return neg.encode_negotiate_response(response)

    def _smb2_session_setup(self, message: bytes, header: smb2.Header) -> bytes:
        try:
            request = smb2.decode_session_setup_request(message)
        except MalformedMessage:
            return smb2.encode_error_response(self._reply(header, NtStatus.INVALID_PARAMETER))
        session_id = header.session_id
        if session_id and not self._known_session(session_id):
            return smb2.encode_error_response(self._reply(header, NtStatus.USER_SESSION_DELETED))
        session_id = session_id or self._new_session_id(8)
        result = self._authenticate(request.security_buffer)
        reply = self._reply(header, result.status, session_id)
        if result.finished and not result.null_session:
            self._sessions.discard(session_id)
            return smb2.encode_error_response(reply)
        flags = smb2.SessionFlags(0)
        if result.null_session:
            self._establish_null(session_id)
            flags = smb2.SessionFlags.IS_NULL
        else:
            self._sessions.add(session_id)
        return smb2.encode_session_setup_response(
            smb2.SessionSetupResponse(reply, flags, result.token)
        )

    def _known_session(self, session_id: int) -> bool:
        return session_id in self._sessions or session_id in self._null

    def _establish_null(self, session_id: int) -> None:
        self._sessions.discard(session_id)
        self._null.add(session_id)

    def _new_session_id(self, size: int) -> int:
        if len(self._sessions) + len(self._null) >= MAX_SESSIONS:
            raise _Close
        value = int.from_bytes(self._random(size), "little") & ((1 << (8 * size - 1)) - 1)
        return value or 1

    # -- authentication (shared by SMB1 and SMB2) ---------------------------------

    def _authenticate(self, blob: bytes) -> _AuthResult:
        try:
            token = spnego.decode_client_token(blob)
        except MalformedMessage:
            return _AuthResult(NtStatus.INVALID_PARAMETER, b"", True)
        if isinstance(token, bytes):
            return self._ntlm_step(token, wrap=False)
        if isinstance(token, spnego.NegTokenInit):
            if token.mech_types[:1] != (spnego.OID_NTLMSSP,) or token.mech_token is None:
                return self._offer_ntlmssp(token.mech_types)
            return self._ntlm_step(token.mech_token, wrap=True)
        if token.response_token is None:
            return _AuthResult(NtStatus.INVALID_PARAMETER, b"", True)
        return self._ntlm_step(token.response_token, wrap=True)

    def _offer_ntlmssp(self, mech_types: tuple[str, ...]) -> _AuthResult:
        """NTLMSSP is not the client's first choice: select it, ask for a retry."""
        state = spnego.NegState.REQUEST_MIC
        if spnego.OID_NTLMSSP not in mech_types:
            state = spnego.NegState.ACCEPT_INCOMPLETE
        token = spnego.encode_neg_token_resp(state, supported_mech=spnego.OID_NTLMSSP)
        return _AuthResult(NtStatus.MORE_PROCESSING_REQUIRED, token, False)

    def _ntlm_step(self, token: bytes, *, wrap: bool) -> _AuthResult:
        try:
            kind = ntlmssp.message_type(token)
            if kind is ntlmssp.MessageType.NEGOTIATE:
                return self._challenge(ntlmssp.decode_negotiate(token), wrap=wrap)
            if kind is ntlmssp.MessageType.AUTHENTICATE:
                anonymous = ntlmssp.decode_authenticate(token).is_anonymous
                return self._anonymous(wrap=wrap) if anonymous else _LOGON_FAILURE
        except MalformedMessage:
            pass
        return _AuthResult(NtStatus.INVALID_PARAMETER, b"", True)

    def _anonymous(self, *, wrap: bool) -> _AuthResult:
        if not self.identity.null_session:
            return _AuthResult(NtStatus.ACCESS_DENIED, b"", True)
        token = b""
        if wrap:
            token = spnego.encode_neg_token_resp(spnego.NegState.ACCEPT_COMPLETED)
        return _AuthResult(NtStatus.SUCCESS, token, True, null_session=True)

    def _challenge(self, negotiate: ntlmssp.NegotiateMessage, *, wrap: bool) -> _AuthResult:
        challenge = ntlmssp.encode_challenge(
            self.identity.ntlm,
            negotiate.flags,
            server_challenge=self._random(8),
            timestamp=ntlmssp.filetime(self._clock()),
        )
        if wrap:
            challenge = spnego.encode_neg_token_resp(
                spnego.NegState.ACCEPT_INCOMPLETE,
                supported_mech=spnego.OID_NTLMSSP,
                response_token=challenge,
            )
        return _AuthResult(NtStatus.MORE_PROCESSING_REQUIRED, challenge, False)

    # -- SMB1 ----------------------------------------------------------------

    def _on_smb1(self, message: bytes) -> bytes:
        # The REPLY flag is not checked: nmap sends requests with it set.
        header = smb1.decode_header(message)
        if header.command == smb1.Command.NEGOTIATE:
            return self._smb1_negotiate(message, header)
        self._advance(Event.SMB1_REQUEST)
        if header.command == smb1.Command.SESSION_SETUP_ANDX:
            return self._smb1_session_setup(message, header)
        if header.uid in self._null:
            return self._smb1_on_null_session(message, header)
        return smb1.encode_error_response(self._smb1_reply(header, NtStatus.SMB_BAD_UID))

    def _smb1_on_null_session(self, message: bytes, header: smb1.Header) -> bytes:
        if header.command == smb1.Command.LOGOFF_ANDX:
            self._null.discard(header.uid)
            return smb1.encode_logoff_response(self._smb1_reply(header, NtStatus.SUCCESS))
        if header.command != smb1.Command.ECHO:
            return smb1.encode_error_response(self._smb1_reply(header, NtStatus.ACCESS_DENIED))
        try:
            echo = smb1.decode_echo_request(message)
        except MalformedMessage:
            return smb1.encode_error_response(self._smb1_reply(header, NtStatus.INVALID_PARAMETER))
        if echo.echo_count == 0:
            return b""
        return smb1.encode_echo_response(self._smb1_reply(header, NtStatus.SUCCESS), 1, echo.data)

    def _smb1_reply(self, request: smb1.Header, status: int, uid: int | None = None) -> smb1.Header:
        keep = smb1.Flags2.UNICODE | smb1.Flags2.EXTENDED_SECURITY | smb1.Flags2.LONG_NAMES
        return smb1.Header(
            command=request.command,
            status=status,
            flags=smb1.Flags.REPLY | smb1.Flags.CASE_INSENSITIVE | smb1.Flags.CANONICALIZED_PATHS,
            flags2=(request.flags2 & keep) | smb1.Flags2.NT_STATUS | smb1.Flags2.IS_LONG_NAME,
            pid_high=request.pid_high,
            tid=request.tid,
            pid_low=request.pid_low,
            uid=request.uid if uid is None else uid,
            mid=request.mid,
        )

    def _smb1_negotiate(self, message: bytes, header: smb1.Header) -> bytes:
        dialects = smb1.decode_negotiate_request(message).dialects
        smb2_allowed = self.identity.max_dialect >= neg.Dialect.SMB202
        if smb2_allowed and smb1.SMB2_WILDCARD in dialects:
            return self._smb1_to_smb2(Event.SMB1_NEGOTIATE_TO_WILDCARD, neg.Dialect.WILDCARD)
        if smb2_allowed and smb1.SMB2_002 in dialects:
            return self._smb1_to_smb2(Event.SMB1_NEGOTIATE_TO_SMB202, neg.Dialect.SMB202)
        if not self.identity.smb1 or smb1.NT_LM_012 not in dialects:
            raise _Close
        self._advance(Event.SMB1_NEGOTIATE_NT1)
        return self._smb1_negotiate_response(header, dialects.index(smb1.NT_LM_012))

    def _smb1_to_smb2(self, event: Event, dialect: int) -> bytes:
        self._advance(event)
        header = smb2.Header(
            command=Command.NEGOTIATE, credits=1, flags=HeaderFlags.SERVER_TO_REDIR
        )
        return self._smb2_negotiate_response(header, dialect)

    def _smb1_negotiate_response(self, header: smb1.Header, index: int) -> bytes:
        extended = bool(header.flags2 & smb1.Flags2.EXTENDED_SECURITY)
        caps = _SMB1_CAPABILITIES | (smb1.Capabilities.EXTENDED_SECURITY if extended else 0)
        reply = self._smb1_reply(header, NtStatus.SUCCESS)
        if not extended:
            reply = replace(reply, flags2=reply.flags2 | smb1.Flags2.UNICODE)
        fields = smb1.NegotiateResponse(
            header=reply,
            dialect_index=index,
            security_mode=smb1.SecurityMode.USER_SECURITY | smb1.SecurityMode.ENCRYPT_PASSWORDS,
            max_mpx_count=50,
            max_number_vcs=1,
            max_buffer_size=16644,
            max_raw_size=65536,
            session_key=0,
            capabilities=caps,
            system_time=ntlmssp.filetime(self._clock()),
            server_time_zone=0,
        )
        if extended:
            blob = spnego.encode_neg_token_init2()
            fields = replace(fields, server_guid=self.identity.server_guid, security_blob=blob)
        else:
            fields = replace(
                fields,
                challenge=self._random(8),
                domain_name=self.identity.workgroup,
                server_name=self.identity.cozen_name,
            )
        return smb1.encode_negotiate_response(fields)

    def _smb1_plain_session_setup(self, request: smb1.SessionSetupRequest) -> bytes:
        passwords = request.oem_password + request.unicode_password
        anonymous = not request.account_name and len(passwords) <= 1
        if not anonymous:
            return smb1.encode_error_response(
                self._smb1_reply(request.header, NtStatus.LOGON_FAILURE)
            )
        if not self.identity.null_session:
            return smb1.encode_error_response(
                self._smb1_reply(request.header, NtStatus.ACCESS_DENIED)
            )
        uid = self._new_session_id(2)
        self._null.add(uid)
        reply = self._smb1_reply(request.header, NtStatus.SUCCESS, uid)
        response = smb1.SessionSetupResponse(
            header=reply,
            action=0,
            security_blob=b"",
            native_os=self.identity.native_os,
            native_lanman=self.identity.native_lanman,
            primary_domain=self.identity.workgroup,
        )
        return smb1.encode_plain_session_setup_response(response)

    def _smb1_session_setup(self, message: bytes, header: smb1.Header) -> bytes:
        try:
            request = smb1.decode_session_setup_request(message)
        except MalformedMessage:
            return smb1.encode_error_response(self._smb1_reply(header, NtStatus.INVALID_PARAMETER))
        if request.security_blob is None:
            return self._smb1_plain_session_setup(request)
        uid = header.uid
        if uid and not self._known_session(uid):
            return smb1.encode_error_response(self._smb1_reply(header, NtStatus.SMB_BAD_UID))
        uid = uid or self._new_session_id(2)
        result = self._authenticate(request.security_blob)
        reply = self._smb1_reply(header, result.status, uid)
        if result.finished and not result.null_session:
            self._sessions.discard(uid)
            return smb1.encode_error_response(reply)
        if result.null_session:
            self._establish_null(uid)
        else:
            self._sessions.add(uid)
        response = smb1.SessionSetupResponse(
            header=reply,
            action=0,
            security_blob=result.token,
            native_os=self.identity.native_os,
            native_lanman=self.identity.native_lanman,
            primary_domain=self.identity.workgroup,
        )
        return smb1.encode_session_setup_response(response)


_SMB1_CAPABILITIES: Final = (
    smb1.Capabilities.UNICODE
    | smb1.Capabilities.LARGE_FILES
    | smb1.Capabilities.NT_SMBS
    | smb1.Capabilities.RPC_REMOTE_APIS
    | smb1.Capabilities.STATUS32
    | smb1.Capabilities.LEVEL_II_OPLOCKS
    | smb1.Capabilities.NT_FIND
    | smb1.Capabilities.LARGE_READX
    | smb1.Capabilities.LARGE_WRITEX
)
