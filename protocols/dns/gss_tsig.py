"""GSS-TSIG (RFC 3645): TKEY negotiation messages and the security context's lifetime (sans-IO).

Theory of operation. Secure zones (Active Directory's, BIND's with
``tkey-gssapi-keytab``) take UPDATEs signed with a GSS-API security context
instead of a shared secret. The client sets the context up with TKEY
queries in GSS-API mode (RFC 2930 §4.1 mode 3, RFC 3645 §3.1): each query
carries the next token of ``gss_init_sec_context`` in a TKEY RR of the
additional section, under a key name the client chose; each answer carries
the server's token in a TKEY RR of the answer section, until the context is
complete. The last answer is signed with the new context (RFC 3645 §3.1.3),
which proves the server holds it. From then on every UPDATE carries a TSIG
with algorithm ``gss-tsig`` whose MAC is the context's MIC (§4), and the
server's answers are verified the same way.

This module builds and reads those messages and keeps the context's
timing; the Kerberos calls (``gssapi``, which may block on the KDC) and the
sockets belong to the adapter, responder.services.registration:

- :func:`key_name` / :func:`build_tkey_query` / :func:`read_tkey_answer`:
  one leg of the negotiation; a TKEY error (RFC 2930 §4.1 ``error``) or an
  rcode other than NOERROR is a :class:`TkeyRefused`.
- :class:`GssSigner`: the :class:`~protocols.dns.update_messages.Signer` of
  the registrar. It holds the current context's TSIG key, is due for a new
  one ``rekey`` seconds after it was set up (before the TKEY lifetime ends),
  and remembers a Kerberos failure until the backoff the adapter gives it
  ends, so that every record set waiting meanwhile fails at once with the
  same outcome instead of asking the KDC again.
- :func:`kerberos_outcome`: a GSS-API/Kerberos error text as an outcome name
  (no credentials, wrong keytab, unknown principal, clock skew, KDC
  unreachable, unknown server principal).
- :func:`accept_bad_direction`: Windows DNS signs the answer to an UPDATE it
  refuses as if it were a request (Kea's ``ignore-bad-direction``), so its
  MIC does not verify; such an answer may be read unverified, only when it
  refuses and only when configured.
"""

from __future__ import annotations

import dataclasses
import re

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TKEY
import dns.rrset
import dns.tsig

GSS_TSIG = dns.tsig.GSS_TSIG
TKEY_MODE_GSSAPI = 3  # RFC 2930 §2.5

_UNKNOWN_SERVER = re.compile(r"\bserver\b[^:]*not found in kerberos database")
# Kerberos error texts (MIT krb5 and Heimdal messages) -> outcome; the first match wins.
_KERBEROS_TEXTS = (
    ("clock skew", "KRB_CLOCK_SKEW"),
    ("cannot contact any kdc", "KRB_KDC_UNREACHABLE"),
    ("cannot find kdc", "KRB_KDC_UNREACHABLE"),
    ("cannot resolve network address for kdc", "KRB_KDC_UNREACHABLE"),
    ("client not found in kerberos database", "KRB_UNKNOWN_PRINCIPAL"),
    ("not found in kerberos database", "KRB_UNKNOWN_PRINCIPAL"),  # MIT: "Client 'x' not ..."
    ("ticket expired", "KRB_EXPIRED"),
    ("preauthentication failed", "KRB_BAD_KEYTAB"),
    ("password incorrect", "KRB_BAD_KEYTAB"),
    ("key table entry not found", "KRB_BAD_KEYTAB"),
    ("key version number", "KRB_BAD_KEYTAB"),
    ("integrity check failed", "KRB_BAD_KEYTAB"),
    ("no key table entry", "KRB_BAD_KEYTAB"),
    ("keytab", "KRB_BAD_KEYTAB"),
    ("no credentials", "KRB_NO_CREDENTIALS"),
    ("no kerberos credentials", "KRB_NO_CREDENTIALS"),
    ("credentials cache", "KRB_NO_CREDENTIALS"),
    ("ccache", "KRB_NO_CREDENTIALS"),
)


class TkeyRefused(Exception):
    """The server refused a TKEY leg: ``outcome`` names how (an rcode or a TKEY error)."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail


def key_name(server_host: str, nonce: int) -> dns.name.Name:
    """A fresh TKEY key name, ``<nonce>.sig-<server>.`` as nsupdate chooses them."""
    return dns.name.from_text(f"{nonce & 0xFFFFFFFF:08x}.sig-{server_host.rstrip('.')}.")


def build_tkey_query(
    name: dns.name.Name, token: bytes, now: int, lifetime: int
) -> dns.message.QueryMessage:
    """One leg: a TKEY query for ``name`` carrying ``token`` (RFC 3645 §3.1.1).

    ``now`` is the inception (seconds since the epoch), ``now + lifetime`` the
    expiration the client asks for.
    """
    query = dns.message.make_query(name, dns.rdatatype.TKEY, dns.rdataclass.ANY)
    rdata = dns.rdtypes.ANY.TKEY.TKEY(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY,
        dns.rdatatype.TKEY,
        GSS_TSIG,
        now,
        now + lifetime,
        TKEY_MODE_GSSAPI,
        0,
        token,
    )
    query.additional.append(dns.rrset.from_rdata(name, 0, rdata))
    return query


def read_tkey_answer(response: dns.message.Message, name: dns.name.Name) -> bytes:
    """The server's token in the answer to :func:`build_tkey_query` (may be empty).

    Raises:
        TkeyRefused: the rcode is not NOERROR, the TKEY carries an error, or no TKEY came back.
    """
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        raise TkeyRefused(dns.rcode.to_text(rcode), "the server refused the TKEY query")
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == dns.rdatatype.TKEY:
            rdata = rrset[0]
            if rdata.error != 0:
                error = dns.rcode.to_text(rdata.error)
                raise TkeyRefused(error, f"the server's TKEY answer carries error {error}")
            if rdata.mode != TKEY_MODE_GSSAPI:
                raise TkeyRefused("TKEY_REFUSED", f"the server answered TKEY mode {rdata.mode}")
            return bytes(rdata.key)
    raise TkeyRefused("TKEY_REFUSED", "the server's answer carries no TKEY record")


def kerberos_outcome(text: str) -> str:
    """The outcome name of a GSS-API/Kerberos error message (``KRB_FAILED`` when unknown)."""
    lowered = text.lower()
    if _UNKNOWN_SERVER.search(lowered):  # MIT: "Server DNS/ns@R not found in Kerberos database"
        return "KRB_UNKNOWN_SERVER"
    for fragment, outcome in _KERBEROS_TEXTS:
        if fragment in lowered:
            return outcome
    return "KRB_FAILED"


def accept_bad_direction(response_rcode: int, allowed: bool) -> bool:
    """Whether an answer whose GSS-TSIG failed to verify may be read anyway (see the module)."""
    return allowed and response_rcode != dns.rcode.NOERROR


@dataclasses.dataclass(eq=False, slots=True)
class GssSigner:
    """The current GSS-TSIG security context and when it needs renewing; times injected."""

    principal: str
    server_principal: str
    rekey: float
    lifetime: int
    key: dns.tsig.Key | None = None
    established_at: float | None = None
    failure: tuple[str, str] | None = None  # (outcome, detail) until failed_until
    failed_until: float = 0.0
    failures: int = 0

    def sign(self, message: dns.message.Message) -> None:
        if self.key is not None:
            message.use_tsig(self.key, fudge=300)

    def label(self) -> tuple[str, str]:
        return self.principal, "gss-tsig"

    def needs_context(self, now: float) -> bool:
        """No context yet, or it is ``rekey`` seconds old."""
        return (
            self.key is None
            or self.established_at is None
            or now >= self.established_at + self.rekey
        )

    def next_rekey(self) -> float | None:
        return None if self.established_at is None else self.established_at + self.rekey

    def established(self, key: dns.tsig.Key, now: float) -> None:
        """A context was set up at ``now``; ``key`` holds it (algorithm gss-tsig)."""
        self.key, self.established_at = key, now
        self.failure, self.failed_until, self.failures = None, 0.0, 0

    def failed(self, outcome: str, detail: str, now: float, delay: float) -> None:
        """Setting up a context failed; the same failure stands for ``delay`` seconds."""
        self.failure, self.failed_until = (outcome, detail), now + delay
        self.failures += 1

    def standing_failure(self, now: float) -> tuple[str, str] | None:
        """The last failure while its backoff lasts, else None (time to try again)."""
        return self.failure if self.failure is not None and now < self.failed_until else None

    def forget(self) -> None:
        """Drop the context (the server no longer accepts it: BADKEY, BADSIG)."""
        self.key, self.established_at = None, None
