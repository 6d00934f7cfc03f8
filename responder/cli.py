"""Command line: ``cozen-responder run|check [--config FILE]``.

Without ``--config`` the embedded default (two loopback nodes) is used, which
is what ``make run`` serves. Every failure is one line on stderr and a
non-zero exit: 1 for a bad config, 2 for bad usage, 3 for a failed bind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

from responder import workers
from responder.app import run_until_signalled
from responder.config import Config, ConfigError, load_config
from responder.net.listeners import BindError
from responder.services.nbns import describe_lines as nbns_lines

EXIT_CONFIG = 1
EXIT_BIND = 3


def describe(config: Config) -> str:
    """The human-readable table of what ``config`` serves."""
    cluster, dns = config.cluster, config.dns
    listen = ", ".join(str(a) for a in dns.listen)
    lines = [
        f"config {config.source}: cluster {cluster.name} (never served), "
        f"domain {cluster.dns_domain}, workgroup {cluster.workgroup}",
        f"dns: {listen} port {dns.port} udp+tcp, authoritative for {cluster.dns_domain} "
        f"and each node's reverse name; fast path {'on' if dns.fast_path else 'off'}",
        _describe_smb(config),
        f"health: {_endpoint(config.health.listen)}",
        f"{'node':<16}{'management':<18}{'fqdn':<34}{'mac':<19}server guid",
    ]
    for node in config.nodes:
        address = str(node.management_ip)
        if node.management_ipv6 is not None:
            address += f" {node.management_ipv6}"
        lines.append(
            f"{node.cozen_name:<16}{address:<18}{node.fqdn:<34}"
            f"{node.mac.hex(':'):<19}{node.server_guid}"
        )
    lines.extend(nbns_lines(config))
    return "\n".join(lines)


_DIALECT_NAMES = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}


def _describe_smb(config: Config) -> str:
    smb = config.smb
    if not smb.enabled:
        return "smb: off (no NBSS 139, no SMB 445)"
    dialects = [name for value, name in _DIALECT_NAMES.items() if value <= smb.max_dialect]
    if smb.smb1:
        dialects.insert(0, "NT LM 0.12")
    version = ".".join(str(part) for part in smb.os_version)
    return (
        f"smb: each node's management address, nbss tcp {smb.netbios_port} + direct tcp "
        f"{smb.port}; dialects {', '.join(dialects)}; os {version} ({smb.native_os}); "
        f"null session {'allowed' if smb.null_session else 'denied'}; "
        f"max {smb.max_connections} connections per listener, idle {smb.idle_timeout:g} s"
    )


def _endpoint(endpoint: tuple[str, int] | None) -> str:
    if endpoint is None:
        return "off"
    host, port = endpoint
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/healthz /status /metrics"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cozen-responder",
        description="Answer DNS, NetBIOS and SMB identity for each node's Cozen name.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "serve in the foreground until SIGTERM/SIGINT; SIGHUP reloads"),
        ("check", "validate the config and print what would be served"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--config",
            metavar="FILE",
            help="TOML config (default: the embedded two-node loopback example)",
        )
        if name == "run":
            sub.add_argument(
                "--loop",
                choices=("uvloop", "asyncio"),
                default="uvloop",
                help="event loop implementation (default: uvloop)",
            )
            sub.add_argument(
                "--log-level", default="info", choices=("debug", "info", "warning", "error")
            )
    return parser


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"cozen-responder: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(config), flush=True)
    if args.command == "check":
        return 0
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    pids = workers.spawn(config.daemon.workers - 1)
    code = _serve(config, args, pids or [])
    if pids is None:  # a worker: leave without running the parent's exit handlers
        sys.stderr.flush()
        os._exit(code)
    workers.reap(pids)
    return code


def _serve(config: Config, args: argparse.Namespace, worker_pids: list[int]) -> int:
    try:
        with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
            runner.run(run_until_signalled(config, args.config, forward_to=worker_pids))
    except BindError as exc:
        print(f"cozen-responder: {exc}", file=sys.stderr)
        return EXIT_BIND
    return 0


if __name__ == "__main__":
    sys.exit(main())
