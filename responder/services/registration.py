"""Registration of every node's Cozen name in the site's DNS (``[registration.dns]``).

The protocol decisions (what to query, which UPDATE with which
prerequisites, what an answer means, when to try again) are the sans-IO
:class:`protocols.dns.update.Registrar`'s; this adapter owns the clock, the
sockets and the log:

- one task waits for the registrar's next timer (or a wake-up), takes the
  due exchanges from :meth:`~Registrar.poll` and runs each in its own task,
  at most :data:`MAX_IN_FLIGHT` at a time, over TCP with dnspython's
  asyncio client (:mod:`dns.asyncquery`), each message bounded by
  :data:`EXCHANGE_TIMEOUT`. Nothing blocks the loop, so answering goes on
  whatever the site's DNS does;
- the server of a zone is ``server``:``port`` or, without ``server``, the
  zone's SOA MNAME found through the system resolver, looked up again after
  a failure;
- the registrar's events become one log line each (registered, conflict,
  error, withdrawn), /status shows every record set's state.

With ``auth = "gss-tsig"`` a :class:`responder.services._gss.Negotiator`
sets up the Kerberos security context (TKEY, RFC 3645) before an UPDATE
needs it, signs the UPDATEs with it and verifies the answers; a Kerberos
failure fails the exchange like any other error (counted, logged, retried
with backoff). Everything else is the same flow as with a TSIG key.

dnspython is imported only when registration is configured, so a daemon
without it starts as light as before. Only worker 0 runs it
(``per_worker = False``). :meth:`RegistrationService.stop` withdraws the
records (``withdraw_on_stop``), waiting at most :data:`STOP_BUDGET` seconds,
and names what was left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from protocols.dns.ownership import RecordSet
from responder.config import Config
from responder.identity import dns_registrations

if TYPE_CHECKING:
    import dns.message

    from protocols.dns.update import Event, Exchange, RecordStatus, Registrar, Settings
    from responder._config_registration import DnsRegistration
    from responder.services._gss import Negotiator

log = logging.getLogger(__name__)

STOP_BUDGET = 1.0  # seconds stop() waits for withdrawals (NBNS's releases take ~0.75 s after)
EXCHANGE_TIMEOUT = 3.0  # seconds per message
MAX_IN_FLIGHT = 8  # exchanges at once, over all zones
DISCOVERY_LIFETIME = 5.0  # seconds for the SOA MNAME look-up

Endpoint = tuple[str, int]


class RegistrationService:
    """Keeps every node's records registered in the site's DNS (RFC 2136, RFC 4703)."""

    name = "registration"
    per_worker = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        nameservers: Sequence[str] | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.loop = loop
        self._nameservers = nameservers  # to find a zone's primary; None: /etc/resolv.conf
        self._draw = draw
        self.settings: DnsRegistration | None = None
        self.registrar: Registrar | None = None
        self.gss: Negotiator | None = None  # auth = "gss-tsig"
        self._servers: dict[str, Endpoint] = {}  # zone -> discovered primary
        self._wake = asyncio.Event()  # the registrar may have work: poll it
        self._progress = asyncio.Event()  # an exchange finished (stop() waits on it)
        self._runner: asyncio.Task[None] | None = None
        self._exchanges: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    # ------------------------------------------------------------ lifecycle

    async def apply(self, config: Config, serial: int) -> None:
        """Register ``config``'s records from now on (withdrawing what it no longer has)."""
        settings, registrar, now = config.registration, self.registrar, self.loop.time()
        if settings is not None:
            self._set_gss(settings)
        if registrar is None:
            if settings is None:
                return
            registrar = self.registrar = _registrar(settings, self.gss, self._draw)
        elif settings is not None:
            registrar.configure(_settings(settings, self.gss), now)
        if settings is not None:  # None: keep the old key and server to withdraw with
            if self.settings != settings:
                self._servers.clear()
            self.settings = settings
        registrar.set_desired(dns_registrations(config), now)
        if self._runner is None:
            self._runner = self.loop.create_task(self._run(registrar))
        self._wake.set()

    def _set_gss(self, settings: DnsRegistration) -> None:
        """The negotiator of ``settings``; the same one (and context) when they did not change."""
        if settings.auth != "gss-tsig":
            self.gss = None
            return
        from protocols.dns.gss_tsig import GssSigner
        from responder.services._gss import Negotiator

        signer = GssSigner(
            settings.principal,
            settings.server_principal or "",
            float(settings.rekey_seconds),
            settings.tkey_lifetime,
        )
        fresh = Negotiator(
            signer,
            settings.keytab,
            settings.accept_bad_direction,
            timeout=EXCHANGE_TIMEOUT,
            draw=self._draw,
        )
        if self.gss is None or not self.gss.same_settings(fresh):
            self.gss = fresh

    async def stop(self) -> None:
        """Withdraw (unless ``withdraw_on_stop = false``) within :data:`STOP_BUDGET`, then stop."""
        registrar = self.registrar
        if registrar is None:
            return
        if self.settings is not None and self.settings.withdraw_on_stop:
            registrar.withdraw_all(self.loop.time())
            self._wake.set()
            await self._wait_withdrawn(registrar)
        else:
            registrar.drop_all()
        await self._cancel()

    async def _wait_withdrawn(self, registrar: Registrar) -> None:
        deadline = self.loop.time() + STOP_BUDGET
        while not registrar.finished() and self.loop.time() < deadline:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), deadline - self.loop.time())
            except TimeoutError:
                break
        left = registrar.remaining()
        if left:
            names = ", ".join(f"{rs.owner} ({rs.zone})" for rs in left)
            log.warning(
                "registration: stopping without the server's answer to the withdrawal of: %s "
                "(one sent may still be applied)",
                names,
            )

    async def _cancel(self) -> None:
        tasks = [*self._exchanges, *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None

    # ------------------------------------------------------------ the loop

    async def _run(self, registrar: Registrar) -> None:
        while True:
            self._wake.clear()
            for exchange in registrar.poll(self.loop.time()):
                task = self.loop.create_task(self._exchange(registrar, exchange))
                self._exchanges.add(task)
                task.add_done_callback(self._exchanges.discard)
            self._log(registrar.events())
            due = registrar.next_timer()
            timeout = None if due is None else max(0.0, due - self.loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _exchange(self, registrar: Registrar, exchange: Exchange) -> None:
        from protocols.dns import update

        async with self._slots:
            try:
                server = await self._server(exchange.zone)
                responses = await self._send_all(exchange, server)
            except NoServer as exc:
                registrar.fail(exchange, "NO_SERVER", str(exc), self.loop.time())
            except update.TRANSPORT_ERRORS as exc:
                self._servers.pop(exchange.zone, None)  # look the primary up again next time
                outcome = update.outcome_of(exc)
                if self.gss is not None and outcome in _CONTEXT_REFUSED:
                    self.gss.forget()
                registrar.fail(exchange, outcome, _detail(exc), self.loop.time())
            except GssFailed as exc:
                registrar.fail(exchange, exc.outcome, exc.detail, self.loop.time())
            else:
                registrar.receive(exchange, responses, self.loop.time())
        self._log(registrar.events())
        self._wake.set()
        self._progress.set()

    async def _send_all(self, exchange: Exchange, server: Endpoint) -> list[dns.message.Message]:
        from protocols.dns.update_messages import Step

        gss = self.gss
        if gss is None or exchange.step is Step.QUERY:  # queries go unsigned
            return [await _send(message, server) for message in exchange.messages]
        if not gss.signer.server_principal:
            gss.signer.server_principal = f"DNS/{await self._mname(exchange.zone, server)}"
        await gss.ensure(server)
        return [await gss.send(message, server) for message in exchange.messages]

    async def _mname(self, zone: str, server: Endpoint) -> str:
        """``zone``'s SOA MNAME as ``server`` (the primary we update) serves it.

        The default server principal is DNS/<MNAME>; asking the server itself
        needs no resolver, and its own zone names the host its principal is for.

        Raises:
            NoServer: no answer, or no SOA in it (the message says which).
        """
        import dns.exception
        import dns.message
        import dns.rdatatype

        try:
            reply = await _send(dns.message.make_query(zone, dns.rdatatype.SOA), server)
        except (dns.exception.DNSException, OSError) as exc:
            why = f"SOA of {zone} (for server_principal) from {server[0]}: {exc}"
            raise NoServer(why) from None
        soa = next((r for r in reply.answer if r.rdtype == dns.rdatatype.SOA), None)
        if soa is None:
            raise NoServer(f"{server[0]} has no SOA for {zone} (for server_principal)")
        return str(soa[0].mname.to_text(omit_final_dot=True))

    async def _server(self, zone: str) -> Endpoint:
        settings = self.settings
        if settings is None:
            raise NoServer("registration is not configured")
        if settings.server is not None:
            return str(settings.server), settings.port
        if zone not in self._servers:
            self._servers[zone] = (await self._discover(zone), settings.port)
        return self._servers[zone]

    async def _discover(self, zone: str) -> str:
        return await discover_primary(zone, self._nameservers)

    # ------------------------------------------------------------ reporting

    def _log(self, events: list[Event]) -> None:
        for event in events:
            _log_event(event, self._where(event.record_set.zone))

    def _where(self, zone: str) -> str:
        settings = self.settings
        if settings is not None and settings.server is not None:
            return f"{settings.server}:{settings.port}"
        host, port = self._servers.get(zone, ("SOA MNAME", 0))
        return f"{host}:{port}" if port else host

    def status(self) -> dict[str, object]:
        """Every record set with its state, last outcome and time; counts per outcome."""
        registrar, settings = self.registrar, self.settings
        if registrar is None or settings is None:
            return {"enabled": False}
        offset = time.time() - self.loop.time()  # loop clock -> wall clock
        key = f"{settings.tsig_name}. ({settings.tsig_algorithm})"
        if settings.auth == "gss-tsig":
            key = f"{settings.principal} (gss-tsig)"
        return {
            "enabled": True,
            "conflict_mode": settings.conflict,
            "key": key,
            "servers": {zone: self._where(zone) for zone in _zones(settings)},
            "outcomes": dict(sorted(registrar.counts.items())),
            "records": [_record_status(s, offset) for s in registrar.status()],
        }


class NoServer(Exception):
    """The zone's primary could not be found."""


async def discover_primary(zone: str, nameservers: Sequence[str] | None = None) -> str:
    """The address of ``zone``'s SOA MNAME (RFC 1035 §3.3.13), through the resolver.

    ``nameservers`` None: the system's (/etc/resolv.conf). Also used by ``audit``.

    Raises:
        NoServer: no SOA, or its MNAME has no address (the message says which).
    """
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
    if nameservers is not None:
        resolver.nameservers = list(nameservers)
    try:
        soa = await resolver.resolve(zone, "SOA", lifetime=DISCOVERY_LIFETIME)
        mname = soa[0].mname.to_text()
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(mname, rdtype, lifetime=DISCOVERY_LIFETIME)
                return str(answer[0].address)
            except dns.resolver.NoAnswer:
                continue
    except dns.exception.DNSException as exc:
        raise NoServer(f"SOA MNAME of {zone} not found: {exc}") from None
    raise NoServer(f"the SOA MNAME {mname} of {zone} has no address")


class GssFailed(Exception):
    """No GSS-TSIG context: ``outcome`` (KRB_*, TKEY_REFUSED, a transport outcome) and why."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail


_CONTEXT_REFUSED = frozenset({"BADKEY", "BADSIG", "BAD_RESPONSE_SIGNATURE"})


async def _send(message: dns.message.Message, server: Endpoint) -> dns.message.Message:
    import dns.asyncquery

    host, port = server
    return await dns.asyncquery.tcp(message, host, timeout=EXCHANGE_TIMEOUT, port=port)


def _registrar(
    settings: DnsRegistration, gss: Negotiator | None, draw: Callable[[], float]
) -> Registrar:
    from protocols.dns import update  # dnspython: loaded only when registration is on

    return update.Registrar(_settings(settings, gss), draw=draw)


def _settings(settings: DnsRegistration, gss: Negotiator | None) -> Settings:
    from protocols.dns import update

    refresh = float(settings.refresh_seconds)
    signer: update.Signer = (
        gss.signer
        if gss is not None
        else update.HmacSigner(
            update.make_key(settings.tsig_name, settings.tsig_secret, settings.tsig_algorithm)
        )
    )
    return update.Settings(
        signer=signer,
        mode=update.ConflictMode(settings.conflict),
        refresh=refresh,
        backoff=update.Backoff(cap=min(update.BACKOFF_CAP, refresh)),
    )


def _zones(settings: DnsRegistration) -> list[str]:
    return [settings.zone, *settings.reverse_zones]


def _detail(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _records(record_set: RecordSet) -> str:
    data = ", ".join(f"{kind} {text}" for kind, text in record_set.records)
    return f"{data}, DHCID" if data else "DHCID"


def _log_event(event: Event, server: str) -> None:
    from protocols.dns.update import EventKind

    rs = event.record_set
    where = f"registration: zone {rs.zone} via {server}: {rs.owner} ({_records(rs)})"
    kind = event.kind
    if kind is EventKind.REGISTERED:
        log.info("%s: registered, %s", where, event.detail)
    elif kind is EventKind.CONFLICT:
        log.warning(
            "%s: conflict, held by someone else: %s; not overwritten, checked again at "
            "each refresh",
            where,
            event.detail,
        )
    elif kind is EventKind.ERROR:
        log.warning("%s: %s: %s", where, event.outcome, event.detail)
    elif kind is EventKind.WITHDRAWN:
        log.info("%s: withdrawn", where)
    else:
        log.warning("%s: %s (%s): %s", where, kind.value, event.outcome, event.detail)


def _record_status(status: RecordStatus, offset: float) -> dict[str, object]:
    rs = status.record_set
    at = status.outcome_at
    return {
        "name": rs.owner,
        "zone": rs.zone,
        "node": rs.node,
        "records": [f"{kind} {text}" for kind, text in rs.records] + ["DHCID"],
        "state": status.state.value,
        "last_outcome": status.outcome,
        "last_time": None if at is None else _iso(at + offset),
        "next_attempt": None if status.next_attempt is None else _iso(status.next_attempt + offset),
        "failures": status.failures,
        "conflict_with": status.conflict_with,
    }


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
