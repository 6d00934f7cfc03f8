"""Lifecycle: start the services, reload on SIGHUP, stop on SIGTERM/SIGINT.

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
from typing import Protocol

from responder import workers
from responder.config import Config, ConfigError, load_config
from responder.identity import node_identities
from responder.net.listeners import BindError
from responder.net.udp import udp_loop_name
from responder.services.dns import DnsService
from responder.services.health import HealthService
from responder.services.nbns import NbnsService
from responder.services.registration import RegistrationService
from responder.services.smb import SmbService

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop, worker: int = 0) -> None:
        self.config = config
        self.loop = loop
        self.services = make_services(loop)
        self.services.append(HealthService(loop, self.status))
        if worker > 0:  # extra worker processes share only the per-worker services' ports
            self.services = [s for s in self.services if s.per_worker]
        self.started_at = time.time()
        self.reloads = 0
        self._reload_lock = asyncio.Lock()  # two quick SIGHUPs apply one after the other

    @staticmethod
    def _serial() -> int:
        # SOA serial: seconds since the epoch at load time, so it rises on every reload.
        return int(time.time()) & 0xFFFFFFFF

    async def start(self) -> None:
        """Bind everything and start answering.

        Raises:
            BindError: an address could not be bound; whatever was bound is released.
        """
        serial = self._serial()
        started: list[Service] = []
        try:
            for service in self.services:
                await service.apply(self.config, serial)
                started.append(service)
        except BaseException:
            for service in reversed(started):
                await service.stop()
            raise

    async def reload(self, new_config: Config) -> None:
        """Switch every service to ``new_config`` or, on failure, to none of it.

        Raises:
            BindError: a new address could not be bound; the old config keeps serving.
        """
        async with self._reload_lock:
            serial = self._serial()
            switched: list[Service] = []
            try:
                for service in self.services:
                    await service.apply(new_config, serial)
                    switched.append(service)
            except BindError:
                for service in switched:
                    await service.apply(self.config, serial)
                raise
            self.config = new_config
            self.reloads += 1

    async def stop(self) -> None:
        for service in reversed(self.services):
            await service.stop()

    def status(self) -> dict[str, object]:
        """What /status reports: the config in force and every service's state."""
        report: dict[str, object] = {
            "config": self.config.source,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "reloads": self.reloads,
            "udp_loop": udp_loop_name(),
            "nodes": [
                {"name": n.cozen_name, "address": n.address, "fqdn": n.fqdn}
                for n in node_identities(self.config)
            ],
        }
        for service in self.services:
            report[service.name] = service.status()
        return report


async def run_until_signalled(
    config: Config,
    config_path: str | None,
    ready: asyncio.Event | None = None,
    worker: int = 0,
    forward_to: Sequence[int] = (),
) -> None:
    """Serve ``config`` until SIGTERM/SIGINT; SIGHUP re-reads ``config_path``.

    Every one of those signals is also passed on to the ``forward_to``
    processes (the worker processes, see :mod:`responder.workers`).

    Raises:
        BindError: the initial bind failed.
    """
    loop = asyncio.get_running_loop()
    daemon = Daemon(config, loop, worker)
    await daemon.start()
    stop = asyncio.Event()
    reloading: set[asyncio.Task[None]] = set()

    def on_stop(sig: int) -> None:
        workers.forward(forward_to, sig)
        stop.set()

    def on_hup() -> None:
        workers.forward(forward_to, signal.SIGHUP)
        task = loop.create_task(_reload_from_file(daemon, config_path))
        reloading.add(task)
        task.add_done_callback(reloading.discard)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    log.info("ready (%s UDP loop)", udp_loop_name())
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in list(reloading):
            task.cancel()
        await daemon.stop()
        log.info("stopped")


async def _reload_from_file(daemon: Daemon, path: str | None) -> None:
    try:
        new_config = load_config(path)
        await daemon.reload(new_config)
    except (ConfigError, BindError) as exc:
        log.error("reload failed, still serving the previous config: %s", exc)
        return
    log.info("reloaded %s (%d nodes)", new_config.source, len(new_config.nodes))
