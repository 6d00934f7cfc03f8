"""Connection states of the SMB server and the one table that moves them.

Theory of operation
-------------------
As in h11's ``_state.py`` ("everything that affects the state machine must
live here"), the states, the events that move them and the rules behind both
are in this one module.  :class:`~protocols.smb.session.SmbSession` names what a frame means as
an :class:`Event` and asks :func:`advance` for the next :class:`State`; a pair
missing from ``TRANSITIONS`` is the answer "close without a reply".  The only
state the session writes by itself is CLOSED, for frames that never become an
event (rule 5: framing errors, undecodable headers, compound requests, frame
types a client never sends, an SMB1 NEGOTIATE with no dialect to answer) and
for one session too many (rule 4).  The rules:

1. On TCP 139 the first frame must be an NBSS SESSION REQUEST (RFC 1002
   §4.3.2) whose called name is one we answer to (suffix 0x20, any letter
   case); a refused name gets NEGATIVE (0x82 called name not present) and the
   connection closes.  Any other frame before it (an SMB message sent
   straight away, as nmap's SMBProgNeg probe does) gets NEGATIVE 0x8F
   (unspecified error, RFC 1002 §4.3.4) and closes, as Windows answers.
   KEEP ALIVE is accepted in every state and answered with
   nothing.  On TCP 445 there is no NBSS session request: one closes.
2. The first SMB message is a NEGOTIATE.  An SMB1 NEGOTIATE listing
   "SMB 2.???" gets an SMB2 response with DialectRevision 0x02FF and the client
   must follow with an SMB2 NEGOTIATE (MS-SMB2 §3.3.5.3.1); listing only
   "SMB 2.002" gets 0x0202 and ends negotiation.  Otherwise, with SMB1
   enabled and "NT LM 0.12" offered, the SMB1 response goes out
   (MS-CIFS §2.2.4.52.2 / MS-SMB §2.2.4.5.2).  An SMB2 NEGOTIATE gets the
   highest common dialect (MS-SMB2 §3.3.5.4); no common dialect gets
   STATUS_NOT_SUPPORTED and the state does not move.  An SMB2 NEGOTIATE that
   does not decode gets STATUS_INVALID_PARAMETER and the connection closes.
3. After negotiation only the negotiated family is spoken.  SESSION_SETUP
   runs NTLMSSP (raw or inside SPNEGO) up to the CHALLENGE and answers a
   named user's AUTHENTICATE with STATUS_LOGON_FAILURE; the connection stays
   usable for a new SESSION_SETUP.  Other SMB2 commands get
   STATUS_USER_SESSION_DELETED (§3.3.5.2.9), ECHO is answered, CANCEL gets
   nothing; other SMB1 commands get STATUS_SMB_BAD_UID (MS-CIFS §2.2.2.4).
4. Anonymous logons (an NTLMSSP anonymous AUTHENTICATE, MS-NLMP §3.2.5.1.2,
   or an SMB1 session setup without extended security, no account and no
   password) follow ``SmbIdentity.null_session``: off, they get
   STATUS_ACCESS_DENIED; on, they succeed as a null session, as Windows
   allows (SMB2 SessionFlags IS_NULL, MS-SMB2 §2.2.6; SMB1 Action 0).  That
   is where nmap's smb-os-discovery reads NativeOS and the CHALLENGE's FQDN.
   A null session may only LOGOFF and ECHO.  TREE_CONNECT on it gets
   STATUS_ACCESS_DENIED (the share access check of MS-SMB2 §3.3.5.7 fails);
   since no tree is ever connected, every command that names a tree (CREATE,
   IOCTL, TREE_DISCONNECT, CLOSE, READ, ...) gets STATUS_NETWORK_NAME_DELETED,
   the answer of §3.3.5.2.11 for a TreeId not in Session.TreeConnectTable.
   In SMB1 those get STATUS_SMB_BAD_TID (ERRSRV/ERRinvtid, MS-CIFS
   §3.3.5.2 and §2.2.2.4).  At most
   :data:`~protocols.smb._auth.MAX_SESSIONS` session IDs live on one
   connection; one more closes it.  (Rules 3 and 4 happen inside the SMB1 and
   SMB2 states; :mod:`protocols.smb._auth` keeps the sessions.)
5. Anything not in the table (a second negotiation, the wrong family, a
   frame type a client never sends, undecodable headers, compound SMB2
   requests, which this server does not implement) closes the connection
   without a reply.  Framing errors and oversized frames close too.
   Nothing raises out of :meth:`~protocols.smb.session.SmbSession.receive_data`.
"""

from __future__ import annotations

import enum
from typing import Final


class State(enum.Enum):
    """Where one connection stands."""

    AWAIT_SESSION_REQUEST = "await-session-request"
    AWAIT_NEGOTIATE = "await-negotiate"
    AWAIT_SMB2_NEGOTIATE = "await-smb2-negotiate"
    SMB1 = "smb1"
    SMB2 = "smb2"
    CLOSED = "closed"


class Event(enum.Enum):
    """What a received frame means for the state machine."""

    NBSS_ACCEPTED = "nbss-accepted"
    NBSS_REFUSED = "nbss-refused"
    NBSS_PREMATURE = "nbss-frame-before-session-request"
    SMB1_NEGOTIATE_TO_WILDCARD = "smb1-negotiate-to-smb2-wildcard"
    SMB1_NEGOTIATE_TO_SMB202 = "smb1-negotiate-to-smb2.0.2"
    SMB1_NEGOTIATE_NT1 = "smb1-negotiate-nt-lm-0.12"
    SMB2_NEGOTIATE = "smb2-negotiate"
    SMB2_NEGOTIATE_MALFORMED = "smb2-negotiate-malformed"
    NEGOTIATE_REFUSED = "negotiate-refused"
    SMB1_REQUEST = "smb1-request"
    SMB2_REQUEST = "smb2-request"


#: state -> event -> next state.  A missing pair closes the connection (rule 5).
TRANSITIONS: Final[dict[State, dict[Event, State]]] = {
    State.AWAIT_SESSION_REQUEST: {
        Event.NBSS_ACCEPTED: State.AWAIT_NEGOTIATE,
        Event.NBSS_REFUSED: State.CLOSED,
        Event.NBSS_PREMATURE: State.CLOSED,
    },
    State.AWAIT_NEGOTIATE: {
        Event.SMB1_NEGOTIATE_TO_WILDCARD: State.AWAIT_SMB2_NEGOTIATE,
        Event.SMB1_NEGOTIATE_TO_SMB202: State.SMB2,
        Event.SMB1_NEGOTIATE_NT1: State.SMB1,
        Event.SMB2_NEGOTIATE: State.SMB2,
        Event.SMB2_NEGOTIATE_MALFORMED: State.CLOSED,
        Event.NEGOTIATE_REFUSED: State.AWAIT_NEGOTIATE,
    },
    State.AWAIT_SMB2_NEGOTIATE: {
        Event.SMB2_NEGOTIATE: State.SMB2,
        Event.SMB2_NEGOTIATE_MALFORMED: State.CLOSED,
        Event.NEGOTIATE_REFUSED: State.AWAIT_SMB2_NEGOTIATE,
    },
    State.SMB1: {Event.SMB1_REQUEST: State.SMB1},
    State.SMB2: {Event.SMB2_REQUEST: State.SMB2},
    State.CLOSED: {},
}


def initial(*, netbios: bool) -> State:
    """The first state: an NBSS SESSION REQUEST is awaited on 139 only (rule 1)."""
    return State.AWAIT_SESSION_REQUEST if netbios else State.AWAIT_NEGOTIATE


def advance(state: State, event: Event) -> State | None:
    """The state after ``event`` in ``state``; None closes without a reply (rule 5)."""
    return TRANSITIONS[state].get(event)
