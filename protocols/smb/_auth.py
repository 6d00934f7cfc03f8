"""SESSION_SETUP authentication legs and the session IDs of one connection (sans-IO).

Theory of operation
-------------------
This server authenticates nobody; it answers each SESSION_SETUP security
blob (MS-SMB2 §2.2.5 SecurityBuffer, MS-SMB §2.2.4.6.1 SecurityBlob) far
enough to show the node's identity, and :class:`Authenticator` is where that
is decided, the same way for SMB1 and SMB2:

- The blob is SPNEGO (RFC 4178, MS-SPNG) or a raw NTLMSSP token.  Answers to
  SPNEGO are wrapped in a negTokenResp; raw tokens get raw answers.
- A NegTokenInit whose first mechanism is not NTLMSSP, or that carries no
  optimistic token, gets NTLMSSP named in supportedMech and no response
  token (negState request-mic if the client listed NTLMSSP further down,
  accept-incomplete if it did not list it at all), so the client sends an
  NTLMSSP NEGOTIATE next.
- An NTLMSSP NEGOTIATE (MS-NLMP §2.2.1.1) gets a CHALLENGE (§2.2.1.2,
  §3.2.5.1.1) that carries the node's names, built by
  :func:`~protocols.auth.ntlmssp.encode_challenge`; the server challenge and
  timestamp come from the injected ``random_bytes`` and ``clock``.  Status
  STATUS_MORE_PROCESSING_REQUIRED.
- An AUTHENTICATE (§2.2.1.3) from a named user gets STATUS_LOGON_FAILURE.
  An anonymous one (§3.2.5.1.2) becomes a null session when ``null_session``
  is on (an empty negTokenResp accept-completed when wrapped), else gets
  STATUS_ACCESS_DENIED.  An SMB1 session setup without extended security
  (MS-CIFS §2.2.4.53.1) is judged the same way by :meth:`Authenticator.plain`.
- A blob or token that does not decode gets STATUS_INVALID_PARAMETER.

:class:`SessionTable` holds the IDs a connection handed out: SMB2 SessionIds
(8 bytes, MS-SMB2 §2.2.1.2) or SMB1 UIDs (2 bytes, MS-CIFS §2.2.3.1).  An ID
is drawn at random (top bit clear, never 0, which means "no session") and
:meth:`SessionTable.settle` files it by the leg's outcome: a failed logon
forgets it, a null session is established, a logon in progress is
remembered for its next leg.  At most :data:`MAX_SESSIONS` IDs are held; the
connection asking for one more is closed (rule 4 of :mod:`protocols.smb._state`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from protocols.auth import ntlmssp, spnego
from protocols.auth.ntlmssp import NtlmIdentity
from protocols.errors import MalformedMessage
from protocols.smb.ntstatus import NtStatus

MAX_SESSIONS: Final = 16


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of one SESSION_SETUP leg: the status and token to send back.

    ``finished`` is False while the client has another leg to send;
    ``null_session`` marks an anonymous logon accepted as a null session.
    """

    status: NtStatus
    token: bytes
    finished: bool
    null_session: bool = False

    @property
    def failed(self) -> bool:
        """True when the logon is over without a session."""
        return self.finished and not self.null_session


_INVALID: Final = AuthResult(NtStatus.INVALID_PARAMETER, b"", True)
_LOGON_FAILURE: Final = AuthResult(NtStatus.LOGON_FAILURE, b"", True)
_ACCESS_DENIED: Final = AuthResult(NtStatus.ACCESS_DENIED, b"", True)


class Authenticator:
    """Answers SESSION_SETUP legs with the identity ``ntlm`` (see the module comment)."""

    def __init__(
        self,
        ntlm: NtlmIdentity,
        *,
        null_session: bool,
        random_bytes: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> None:
        self.ntlm = ntlm
        self.null_session = null_session
        self._random = random_bytes
        self._clock = clock

    def step(self, blob: bytes) -> AuthResult:
        """Answer one security blob, SPNEGO or raw NTLMSSP.

        Undecodable input gives STATUS_INVALID_PARAMETER; nothing raises.
        """
        try:
            token = spnego.decode_client_token(blob)
        except MalformedMessage:
            return _INVALID
        if isinstance(token, bytes):
            return self._ntlm_step(token, wrap=False)
        if isinstance(token, spnego.NegTokenInit):
            mech_token = spnego.ntlm_mech_token(token)
            if mech_token is None:
                return _offer_ntlmssp(token.mech_types)
            return self._ntlm_step(mech_token, wrap=True)
        if token.response_token is None:
            return _INVALID
        return self._ntlm_step(token.response_token, wrap=True)

    def plain(self, account_name: str, passwords: bytes) -> AuthResult:
        """Answer an SMB1 session setup without extended security (MS-CIFS §2.2.4.53.1).

        It is anonymous with no account name and at most one password byte
        (OEM and Unicode passwords together).
        """
        if account_name or len(passwords) > 1:
            return _LOGON_FAILURE
        return self._anonymous(wrap=False)

    def _ntlm_step(self, token: bytes, *, wrap: bool) -> AuthResult:
        try:
            kind = ntlmssp.message_type(token)
            if kind is ntlmssp.MessageType.NEGOTIATE:
                return self._challenge(ntlmssp.decode_negotiate(token), wrap=wrap)
            if kind is ntlmssp.MessageType.AUTHENTICATE:
                anonymous = ntlmssp.decode_authenticate(token).is_anonymous
                return self._anonymous(wrap=wrap) if anonymous else _LOGON_FAILURE
        except MalformedMessage:
            pass
        return _INVALID

    def _anonymous(self, *, wrap: bool) -> AuthResult:
        if not self.null_session:
            return _ACCESS_DENIED
        token = b""
        if wrap:
            token = spnego.encode_neg_token_resp(spnego.NegState.ACCEPT_COMPLETED)
        return AuthResult(NtStatus.SUCCESS, token, True, null_session=True)

    def _challenge(self, negotiate: ntlmssp.NegotiateMessage, *, wrap: bool) -> AuthResult:
        challenge = ntlmssp.encode_challenge(
            self.ntlm,
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
        return AuthResult(NtStatus.MORE_PROCESSING_REQUIRED, challenge, False)


def _offer_ntlmssp(mech_types: tuple[str, ...]) -> AuthResult:
    """NTLMSSP is not the client's first choice (or came without a token): select it."""
    state = spnego.NegState.REQUEST_MIC
    if spnego.OID_NTLMSSP not in mech_types:
        state = spnego.NegState.ACCEPT_INCOMPLETE
    token = spnego.encode_neg_token_resp(state, supported_mech=spnego.OID_NTLMSSP)
    return AuthResult(NtStatus.MORE_PROCESSING_REQUIRED, token, False)


class TooManySessions(Exception):
    """A new session ID was asked for while :data:`MAX_SESSIONS` are held."""


class SessionTable:
    """The session IDs of one connection: logons in progress and null sessions."""

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        self._pending: set[int] = set()
        self._null: set[int] = set()

    def new_id(self, size: int) -> int:
        """A random ID of ``size`` bytes (2: SMB1 UID, 8: SMB2 SessionId).

        Raises:
            TooManySessions: :data:`MAX_SESSIONS` IDs are held already.
        """
        if len(self._pending) + len(self._null) >= MAX_SESSIONS:
            raise TooManySessions
        value = int.from_bytes(self._random(size), "little") & ((1 << (8 * size - 1)) - 1)
        return value or 1

    def known(self, session_id: int) -> bool:
        """True for an ID in progress or a null session."""
        return session_id in self._pending or session_id in self._null

    def is_null(self, session_id: int) -> bool:
        """True for an established null session."""
        return session_id in self._null

    def settle(self, session_id: int, result: AuthResult) -> None:
        """File ``session_id`` by the outcome of its latest leg."""
        if result.failed:
            self._pending.discard(session_id)
        elif result.null_session:
            self._pending.discard(session_id)
            self._null.add(session_id)
        else:
            self._pending.add(session_id)

    def logoff(self, session_id: int) -> None:
        """End the null session ``session_id`` (LOGOFF)."""
        self._null.discard(session_id)
