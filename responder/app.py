"""Lifecycle: start the services, reload on SIGHUP, stop on SIGTERM/SIGINT.

SIGUSR1 logs one line of counters (as dnsmasq does); SIGUSR2 is ignored.
Both would otherwise end the process without releasing its names, so the
command line ignores them from the very start (:func:`ignore_user_signals`).

A :class:`Daemon` owns one instance of each protocol service. Every service
has the same two verbs: ``apply(config, serial)`` (start serving, or switch to
a new config: bind new addresses first, then swap answers, then unbind old
ones) and ``stop()``. A reload applies the new config to each service in
turn; if one fails (an address cannot be bound), the services already
switched are put back on the old config, so the daemon never runs half old,
half new.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from functools import partial
from typing import Protocol

from responder import heap, logs, streams, systemd, workers
from responder.config import Config, ConfigError, load_config
from responder.health.board import Publisher, WorkerBoard, worker_counters
from responder.health.view import ReloadRecord
from responder.identity import ZoneSerial, node_identities, zone_serial
from responder.net import tap
from responder.net.listeners import BindError
from responder.net.udp import udp_loop_name
from responder.offload import off_loop
from responder.privileges import Account, PrivilegeError, drop_to
from responder.services.dns import DnsService
from responder.services.health import HealthService
from responder.services.nbns import NbnsService
from responder.services.registration import RegistrationService
from responder.services.smb import SmbService

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
USER_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
# The counters the SIGUSR1 summary adds up per service, wherever they sit in its status().
COUNTERS = (
    "received",
    "answered",
    "malformed",
    "send_dropped",
    "handler_bugs",
    "connections",
    "evicted",
)


class Service(Protocol):
    """What the daemon drives: every protocol service has these verbs."""

    name: str
    per_worker: bool  # stateless: every worker process runs one (SO_REUSEPORT)

    async def apply(self, config: Config, serial: int) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, object]: ...


def make_services(loop: asyncio.AbstractEventLoop) -> list[Service]:
    """One instance of each protocol service, in start order."""
    # SMB before NBNS: the <20> name is claimed only once the server behind it listens,
    # and (stop runs in reverse) names are released before SMB goes away. Registration
    # last: records go into the site's DNS once answering works, and are withdrawn first.
    return [DnsService(loop), SmbService(loop), NbnsService(loop), RegistrationService(loop)]


class Daemon:
    """The services of one process; ``worker`` > 0 in the extra worker processes."""

    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        worker: int = 0,
        board: WorkerBoard | None = None,
    ) -> None:
        """``board``: where worker processes publish their counters for /metrics."""
        self.config = config
        self.loop = loop
        self.services = make_services(loop)
        self.services.append(HealthService(loop, self))
        if worker > 0:  # extra worker processes share only the per-worker services' ports
            self.services = [s for s in self.services if s.per_worker]
        self.worker = worker
        self.started_at = time.time()
        self.reloads = 0
        self.reload_record = ReloadRecord()  # results of SIGHUP reloads, for /status and /metrics
        self.board = board
        self._publisher: Publisher | None = None
        if board is not None and worker > 0:
            self._publisher = Publisher(board, worker, lambda: worker_counters(self.services))
        self._reload_lock = asyncio.Lock()  # two quick SIGHUPs apply one after the other
        self._zone_serial: ZoneSerial | None = None  # (zone digest, SOA serial) in force

    def _serial(self, config: Config) -> ZoneSerial:
        # SOA serial: stable across restarts of one config file, rising on every zone change.
        return zone_serial(config, self._zone_serial)

    async def start(self) -> None:
        """Bind everything and start answering.

        Raises:
            BindError: an address could not be bound; whatever was bound is released.
        """
        self._zone_serial = self._serial(self.config)
        serial = self._zone_serial[1]
        started: list[Service] = []
        try:
            for service in self.services:
                await service.apply(self.config, serial)
                started.append(service)
        except BaseException:
            for service in reversed(started):
                await service.stop()
            raise
        if self._publisher is not None:
            self._publisher.start()

    async def reload(self, new_config: Config) -> None:
        """Switch every service to ``new_config`` or, on failure, to none of it.

        Raises:
            BindError: a new address could not be bound; the old config keeps serving.
        """
        async with self._reload_lock:
            # both walk every node (tens of ms at 1,000): a thread's work, not the loop's
            await off_loop(partial(node_identities, new_config))  # each service asks next
            zone, serial = await off_loop(partial(self._serial, new_config))
            switched: list[Service] = []
            try:
                for service in self.services:
                    await service.apply(new_config, serial)
                    switched.append(service)
            except BindError:
                old = serial if self._zone_serial is None else self._zone_serial[1]
                for service in switched:
                    await service.apply(self.config, old)
                raise
            self.config = new_config
            self._zone_serial = zone, serial
            self.reloads += 1

    async def stop(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
        for service in reversed(self.services):
            await service.stop()

    def status(self) -> dict[str, object]:
        """What /status reports: the config in force and every service's state."""
        report: dict[str, object] = {
            "config": self.config.source,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "reloads": self.reloads,
            "reload": self.reload_record.as_dict(),
            "udp_loop": udp_loop_name(),
            "log_write_errors": streams.log_write_errors(),  # log lines lost (disk full, ...)
            "nodes": [
                {"name": n.cozen_name, "address": n.address, "fqdn": n.fqdn}
                for n in node_identities(self.config)
            ],
        }
        for service in self.services:
            report[service.name] = service.status()
        if tap.current is not None:  # run --pcap (responder/capture)
            report["capture"] = tap.current.status()
        return report


async def run_until_signalled(
    config: Config,
    config_path: str | None,
    ready: asyncio.Event | None = None,
    worker: int = 0,
    forward_to: Sequence[int] = (),
    board: WorkerBoard | None = None,
    account: Account | None = None,
) -> None:
    """Serve ``config`` until SIGTERM/SIGINT; SIGHUP re-reads ``config_path``.

    Every one of those signals is also passed on to the ``forward_to``
    processes (the worker processes, see :mod:`responder.workers`). Once
    everything is bound, the process becomes ``account`` (``run --user``), and
    the main process tells systemd (see :mod:`responder.systemd`).

    Raises:
        BindError: the initial bind failed.
        PrivilegeError: ``account`` could not be switched to (nothing is left bound).
    """
    loop = asyncio.get_running_loop()
    notifier = systemd.Notifier() if worker == 0 else systemd.Notifier({})
    recorder = _start_capture(config, worker)  # opened as root, before any user change
    try:
        daemon = Daemon(config, loop, worker, board)
        await _start(daemon, account)
        await _serve(loop, notifier, daemon, config_path, forward_to, ready)
    finally:
        _stop_capture(recorder)  # after the services stopped: their last words are recorded
        notifier.close()


async def _start(daemon: Daemon, account: Account | None) -> None:
    """Bind everything, then drop root.

    Raises:
        BindError: the initial bind failed.
        PrivilegeError: root could not be dropped; the services are stopped again.
    """
    with heap.building():
        await daemon.start()
    if account is None:
        return
    try:
        drop_to(account)
    except PrivilegeError:
        await daemon.stop()
        raise


async def _serve(
    loop: asyncio.AbstractEventLoop,
    notifier: systemd.Notifier,
    daemon: Daemon,
    config_path: str | None,
    forward_to: Sequence[int],
    ready: asyncio.Event | None,
) -> None:
    worker = daemon.worker
    stop = asyncio.Event()
    reloading: set[asyncio.Task[None]] = set()

    def on_stop(sig: int) -> None:
        workers.forward(forward_to, sig)
        notifier.stopping()
        stop.set()

    def on_hup() -> None:
        workers.forward(forward_to, signal.SIGHUP)
        notifier.reloading()
        task = loop.create_task(_reload_from_file(daemon, config_path))
        reloading.add(task)
        task.add_done_callback(reloading.discard)
        task.add_done_callback(lambda t: None if t.cancelled() else notifier.ready())
        if tap.current is not None:  # logrotate moved the capture file: start a new one
            tap.current.reopen()

    def on_user(sig: int) -> None:
        workers.forward(forward_to, sig)
        if sig == signal.SIGUSR1:  # SIGUSR2 means nothing (yet): ignored
            log.info("%s", counters_line(daemon.status(), worker))

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in USER_SIGNALS:  # kept while stopping: a summary then is harmless
        loop.add_signal_handler(sig, on_user, sig)
    log.info("ready (%s UDP loop)", udp_loop_name())
    notifier.ready()
    notifier.start_watchdog(loop)
    floods = loop.create_task(logs.summarise_floods())
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        floods.cancel()
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in list(reloading):
            task.cancel()
        await daemon.stop()
        for sig in USER_SIGNALS:
            loop.remove_signal_handler(sig)  # which restores the default: ignore them again
            signal.signal(sig, signal.SIG_IGN)
        log.info("stopped")


def _start_capture(config: Config, worker: int) -> object:
    """The recorder of ``run --pcap`` / ``[capture] file``; imported only then.

    Raises:
        CaptureUnwritable: the capture file cannot be created.
    """
    if config.capture.file is None:
        return None
    from responder.capture.session import start_recording

    try:
        return start_recording(config, worker)
    except OSError as exc:
        raise tap.CaptureUnwritable(f"capture: {config.capture.file}: {exc.strerror}") from None


def _stop_capture(recorder: object) -> None:
    if recorder is not None:
        from responder.capture.session import stop_recording

        stop_recording(recorder)  # type: ignore[arg-type]


def ignore_user_signals() -> None:
    """Have SIGUSR1 and SIGUSR2 ignored until :func:`run_until_signalled` answers them.

    Their default action ends the process on the spot, names unreleased; the
    worker processes inherit the setting when they are forked.
    """
    for sig in USER_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def counters_line(report: dict[str, object], worker: int = 0) -> str:
    """The SIGUSR1 summary: uptime, reloads, lost log lines, then each service's counters.

    A service's counters are summed over its listeners and nodes, e.g.
    ``dns received=12 answered=12 ...; nbns received=4 answered=2 malformed=0``.
    """
    head = (
        f"uptime {report['uptime_seconds']:.0f} s, {report['reloads']} reloads, "
        f"{report['log_write_errors']} log write errors"
    )
    parts = [head]
    for name, section in report.items():
        totals: dict[str, int] = {}
        _counter_totals(section, totals)
        if totals:
            parts.append(name + " " + " ".join(f"{k}={totals[k]}" for k in COUNTERS if k in totals))
    who = f"worker {worker} " if worker else ""
    return f"{who}counters: " + "; ".join(parts)


def _counter_totals(value: object, totals: dict[str, int]) -> None:
    """Add the :data:`COUNTERS` found anywhere in ``value`` (a status section) to ``totals``."""
    if isinstance(value, list):
        for item in value:
            _counter_totals(item, totals)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in COUNTERS and isinstance(item, int) and not isinstance(item, bool):
                totals[key] = totals.get(key, 0) + item
            else:
                _counter_totals(item, totals)


async def _reload_from_file(daemon: Daemon, path: str | None) -> None:
    try:
        new_config = await off_loop(partial(load_config, path))
        _warn_if_restart_needed(daemon, new_config)
        with heap.building():
            await daemon.reload(new_config)
    except (ConfigError, BindError) as exc:
        log.error("reload failed, still serving the previous config: %s", exc)
        daemon.reload_record.record(False, str(exc))
        return
    daemon.reload_record.record(True)
    log.info("reloaded %s (%d nodes)", new_config.source, len(new_config.nodes))


def _warn_if_restart_needed(daemon: Daemon, new_config: Config) -> None:
    """The settings a reload does not apply (read at start only): one warning each."""
    old, new = daemon.config.daemon.workers, new_config.daemon.workers
    if new != old and daemon.worker == 0:
        log.warning(
            "[daemon] workers changed from %d to %d: takes effect only at the next restart",
            old,
            new,
        )
