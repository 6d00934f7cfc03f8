"""GSS-TSIG for DNS registration: the Kerberos calls and the TKEY exchange over TCP (RFC 3645).

The messages and the context's timing are :mod:`protocols.dns.gss_tsig`'s;
this adapter owns what blocks or waits: the ``gssapi`` calls (run in the
loop's default executor, since acquiring a ticket may wait on the KDC) and
the TCP exchanges, each bounded by ``timeout``. One :class:`Negotiator`
holds the registration's :class:`~protocols.dns.gss_tsig.GssSigner`; a lock
makes the record sets that need a context at the same moment share one
negotiation. A failure is logged once (principal, server principal,
outcome, reason), stands for a backoff, and every exchange that asks
meanwhile fails with it, so the registrar counts and retries each set as
for any other error. ``gssapi`` is imported only here, only when
``auth = "gss-tsig"``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.message
import dns.tsig

from protocols.dns import gss_tsig
from protocols.dns.update import BACKOFF_CAP, Backoff
from protocols.dns.update_messages import explain, outcome_of
from responder.services.registration import GssFailed as NegotiationFailed

log = logging.getLogger("responder.services.registration")

MAX_LEGS = 8  # TKEY round trips before giving up (Kerberos needs one)

Endpoint = tuple[str, int]


class Negotiator:
    """Sets up (and renews) the GSS-TSIG context; sends the signed UPDATEs."""

    def __init__(
        self,
        signer: gss_tsig.GssSigner,
        keytab: str | None,
        accept_bad_direction: bool,
        *,
        timeout: float,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.signer = signer
        # as configured ("": DNS/<SOA MNAME>, filled into the signer at the first UPDATE)
        self.configured_server_principal = signer.server_principal
        self.keytab = keytab
        self.accept_bad_direction = accept_bad_direction
        self.timeout = timeout
        self.backoff = Backoff(cap=BACKOFF_CAP)
        self._draw = draw
        self._lock = asyncio.Lock()
        self._endpoint: Endpoint | None = None
        self.negotiations = 0  # contexts set up, for /status and the tests

    def same_settings(self, other: Negotiator) -> bool:
        return self._settings() == other._settings()

    def _settings(self) -> tuple[object, ...]:
        s = self.signer
        server = self.configured_server_principal  # not the derived one: it differs from ""
        return (s.principal, server, s.rekey, s.lifetime, self.keytab, self.accept_bad_direction)

    async def ensure(self, server: Endpoint) -> None:
        """A context with ``server`` that is not due for renewal.

        Raises:
            NegotiationFailed: Kerberos or the server refused, now or within the backoff.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            signer, now = self.signer, loop.time()
            standing = signer.standing_failure(now)
            if standing is not None:
                raise NegotiationFailed(*standing)
            if not signer.needs_context(now) and server == self._endpoint:
                return
            try:
                key = await self._negotiate(server)
            except NegotiationFailed as exc:
                delay = self.backoff.delay(signer.failures + 1, self._draw())
                signer.failed(exc.outcome, exc.detail, loop.time(), delay)
                log.warning(
                    "registration: GSS-TSIG as %s to %s at %s:%d: %s: %s (%s); "
                    "tried again in %.0f s",
                    signer.principal,
                    signer.server_principal,
                    *server,
                    exc.outcome,
                    explain(exc.outcome, signer),
                    exc.detail,
                    delay,
                )
                raise
            signer.established(key, loop.time())
            self._endpoint = server
            self.negotiations += 1
            log.info(
                "registration: GSS-TSIG security context set up as %s with %s at %s:%d "
                "(key %s), renewed in %.0f s",
                signer.principal,
                signer.server_principal,
                *server,
                key.name.to_text(),
                signer.rekey,
            )

    def forget(self) -> None:
        """The server refused the context (BADKEY, BADSIG): set up a new one next time."""
        self.signer.forget()

    async def _negotiate(self, server: Endpoint) -> dns.tsig.Key:
        try:
            import gssapi
            from gssapi.raw.misc import GSSError
        except ImportError:  # config.py refuses gss-tsig without it; belt and braces
            raise NegotiationFailed("GSS_UNAVAILABLE", "import gssapi failed") from None
        loop = asyncio.get_running_loop()
        try:
            context = await loop.run_in_executor(None, self._context, gssapi)
            token = await loop.run_in_executor(None, context.step)
            return await self._legs(context, token, server)
        except GSSError as exc:
            text = " ".join(str(exc).split())
            raise NegotiationFailed(gss_tsig.kerberos_outcome(text), text) from None
        except gss_tsig.TkeyRefused as exc:
            raise NegotiationFailed(exc.outcome, exc.detail) from None
        except (dns.tsig.BadTime, dns.tsig.PeerBadTime) as exc:
            # the KDC may allow the skew (MIT clients sync to it); the signed TKEY answer does not
            raise NegotiationFailed("KRB_CLOCK_SKEW", f"TKEY answer: {exc}") from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise NegotiationFailed(outcome_of(exc), f"{type(exc).__name__}: {exc}") from None

    def _context(self, gssapi: Any) -> Any:
        """The initiator's context (blocking: may read the keytab)."""
        kinds = gssapi.NameType
        client = gssapi.Name(self.signer.principal, kinds.kerberos_principal)
        target = gssapi.Name(self.signer.server_principal, kinds.kerberos_principal)
        store = None
        if self.keytab is not None:  # a ticket of our own, in memory: nothing left on disk
            store = {"client_keytab": self.keytab, "ccache": f"MEMORY:cozen-{id(self)}"}
        creds = gssapi.Credentials(name=client, usage="initiate", store=store)
        flags = gssapi.RequirementFlag
        return gssapi.SecurityContext(
            name=target,
            creds=creds,
            usage="initiate",
            flags=flags.mutual_authentication | flags.replay_detection | flags.integrity,
        )

    async def _legs(self, context: Any, token: bytes, server: Endpoint) -> dns.tsig.Key:
        host = self.signer.server_principal.split("/", 1)[-1].split("@", 1)[0]
        name = gss_tsig.key_name(host, int(self._draw() * 2**32))
        key = dns.tsig.Key(name, context, gss_tsig.GSS_TSIG)
        keyring = dns.tsig.GSSTSigAdapter({name: key})  # type: ignore[no-untyped-call]
        for _ in range(MAX_LEGS):
            query = gss_tsig.build_tkey_query(name, token, int(time.time()), self.signer.lifetime)
            wire = await self._round_trip(query.to_wire(), server)
            # A signed answer: the adapter steps the context with its token, then verifies
            # the MIC with it (RFC 3645 §3.1.3). An unsigned one: step it here.
            response = dns.message.from_wire(wire, keyring=keyring, request_mac=b"")
            answer = gss_tsig.read_tkey_answer(response, name)
            if not response.had_tsig and not context.complete:
                token = context.step(answer) or b""
            if context.complete:
                if not response.had_tsig:
                    raise gss_tsig.TkeyRefused(
                        "TKEY_REFUSED", "the server's last TKEY answer is not signed"
                    )
                return key
        raise gss_tsig.TkeyRefused("TKEY_REFUSED", f"no context after {MAX_LEGS} TKEY legs")

    async def send(self, message: dns.message.Message, server: Endpoint) -> dns.message.Message:
        """``message`` (signed by the signer) and its verified answer.

        Raises:
            dns.exception.DNSException, OSError, EOFError: as :func:`outcome_of` reads them.
        """
        self.signer.sign(message)
        wire = await self._round_trip(message.to_wire(), server)
        try:
            return dns.message.from_wire(wire, keyring=message.keyring, request_mac=message.mac)
        except dns.tsig.BadSignature:
            unverified = dns.message.from_wire(wire, keyring=False)
            if not gss_tsig.accept_bad_direction(unverified.rcode(), self.accept_bad_direction):
                raise
            log.debug("registration: read a refusal whose GSS-TSIG did not verify (%s)", server)
            return unverified

    async def _round_trip(self, wire: bytes, server: Endpoint) -> bytes:
        """One message over TCP, length-prefixed (RFC 1035 §4.2.2), within ``timeout``."""
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(*server)
            try:
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                return await reader.readexactly(length)
            finally:
                writer.close()
