"""What SMB sessions count for the daemon's /metrics (sans-IO).

A service owns one :class:`SmbCounters` and passes it to every
:class:`~protocols.smb.session.SmbSession` it creates; each session adds
one at its decision points, so the counts outlive connections and reloads.

- :meth:`SmbCounters.negotiated`: a NEGOTIATE answered, by the dialect it
  chose: ``NT LM 0.12`` (SMB1, MS-CIFS §2.2.4.52.2), ``2.0.2`` ... ``3.1.1``
  (MS-SMB2 §2.2.4), ``2.???`` (the wildcard answer to an SMB1 multi-protocol
  NEGOTIATE, MS-SMB2 §3.3.5.3.1), or ``refused`` (no dialect in common: an
  error, or the connection closed).
- :meth:`SmbCounters.session_setup`: a SESSION_SETUP leg answered, by
  result: ``challenge_sent`` (the NTLMSSP CHALLENGE, MS-NLMP §2.2.1.2),
  ``mech_offered`` (SPNEGO selecting NTLMSSP, no challenge yet),
  ``null_session`` (an anonymous logon accepted), ``logon_failure`` (every
  AUTHENTICATE; also the plain SMB1 logon of a named user),
  ``access_denied`` (anonymous with null sessions off),
  ``invalid`` (a malformed request or token), ``unknown_session`` (a
  session ID or UID this connection never gave), ``other`` for any other
  status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from protocols.smb.negotiate import DIALECT_NAMES, Dialect
from protocols.smb.ntstatus import NtStatus

NT_LM_012: Final = "NT LM 0.12"
REFUSED: Final = "refused"
_DIALECTS: Final = {**{int(d): n for d, n in DIALECT_NAMES.items()}, int(Dialect.WILDCARD): "2.???"}
_CHALLENGE: Final = b"NTLMSSP\x00\x02\x00\x00\x00"  # signature + MessageType 2 (MS-NLMP §2.2.1.2)
_RESULTS: Final = {
    int(NtStatus.LOGON_FAILURE): "logon_failure",
    int(NtStatus.ACCESS_DENIED): "access_denied",
    int(NtStatus.INVALID_PARAMETER): "invalid",
    int(NtStatus.USER_SESSION_DELETED): "unknown_session",
    int(NtStatus.SMB_BAD_UID): "unknown_session",
}


@dataclass(slots=True)
class SmbCounters:
    """NEGOTIATE answers by dialect and SESSION_SETUP answers by result."""

    negotiations: dict[str, int] = field(default_factory=dict)
    session_setups: dict[str, int] = field(default_factory=dict)

    def negotiated(self, dialect: int | str) -> None:
        """Count a NEGOTIATE answer: an SMB2 dialect revision, or a name (NT_LM_012, REFUSED)."""
        name = dialect if isinstance(dialect, str) else _DIALECTS.get(dialect, f"0x{dialect:04x}")
        self.negotiations[name] = self.negotiations.get(name, 0) + 1

    def session_setup(self, status: int, token: bytes, *, null_session: bool) -> None:
        """Count a SESSION_SETUP answer from its status, security token and null flag."""
        if null_session:
            result = "null_session"
        elif status == NtStatus.MORE_PROCESSING_REQUIRED:
            result = "challenge_sent" if _CHALLENGE in token else "mech_offered"
        else:
            result = _RESULTS.get(status, "other")
        self.session_setups[result] = self.session_setups.get(result, 0) + 1
