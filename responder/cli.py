"""Command line: ``cozen-responder COMMAND [options]``, one entry per command.

:data:`COMMANDS` is the table: each :class:`Command` names itself, adds its
options to its own sub-parser and runs with the parsed arguments, returning
the exit status. A new command (probe, audit, replay) is one more entry.
``run --pcap`` records (responder/capture); ``replay`` re-answers a capture.

Without ``--config`` the embedded default (two loopback nodes) is used, which
is what ``make run`` serves. Every failure is one line on stderr and a
non-zero exit: 1 for a bad config (or output ``check`` cannot write), 2 for
bad usage (an unknown ``--user``), 3 for a failed bind, 4 when the system
refuses (too low a hard limit on open files, root cannot be dropped).
Closed, broken or full standard streams never end in a traceback (see
:mod:`responder.streams`): ``check`` whose reader has gone dies of SIGPIPE as
coreutils do; ``run`` keeps serving.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

from responder import __version__, logs, streams, workers
from responder.app import ignore_user_signals, run_until_signalled
from responder.config import Config, ConfigError, load_config, with_capture_options
from responder.describe import describe
from responder.health.board import WorkerBoard
from responder.net.listeners import BindError
from responder.net.tap import CaptureUnwritable
from responder.openfiles import LimitError, raise_open_files
from responder.privileges import Account, PrivilegeError, resolve
from responder.tools import commands as tools

EXIT_CONFIG = 1
EXIT_OUTPUT = 1  # as coreutils: stdout could not be written (closed, full)
EXIT_USAGE = 2
EXIT_BIND = 3
EXIT_SYSTEM = 4  # too few open files allowed, or root could not be dropped


@dataclass(frozen=True, slots=True)
class Command:
    """One sub-command: its name, its one-line help, its options and what it does."""

    name: str
    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config (default: the embedded two-node loopback example)",
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop implementation (default: uvloop)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe level logged to stderr (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="stderr log lines: 'TIME LEVEL LOGGER: MESSAGE' or one JSON object (default: text)",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="after binding, become this user, keeping only CAP_NET_BIND_SERVICE (needs root)",
    )
    parser.add_argument(
        "--group",
        metavar="NAME",
        help="with --user: the group to become (default: the user's primary group)",
    )
    capture = parser.add_argument_group("recording (see README: Capturing and replaying)")
    capture.add_argument("--pcap", metavar="FILE", help="record every exchange as pcapng")
    capture.add_argument("--pcap-rotate", metavar="SIZE|TIME", help="e.g. 100MB or 1h")
    capture.add_argument("--pcap-filter", metavar="LIST", help="e.g. dns,nbns,10.0.0.0/24")


def _load(args: argparse.Namespace) -> Config | None:
    """The config named by ``--config``; None (reported on stderr) when invalid."""
    try:
        return with_capture_options(load_config(args.config), args)
    except ConfigError as exc:
        streams.error(str(exc))
        return None


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    try:
        streams.emit(describe(config))
    except BrokenPipeError:  # check | head -1
        streams.die_of_sigpipe()
    except OSError as exc:  # the description is check's product: losing it is an error
        streams.discard("stdout")
        streams.error(f"cannot write to standard output: {exc.strerror}")
        return EXIT_OUTPUT
    return 0


def _account(args: argparse.Namespace) -> Account | None:
    """Who ``--user``/``--group`` name, resolved before anything is bound.

    Raises:
        PrivilegeError: no such user or group, or --group without --user.
    """
    if args.user is None:
        if args.group is not None:
            raise PrivilegeError("--group needs --user")
        return None
    return resolve(args.user, args.group)


def _run(args: argparse.Namespace) -> int:
    ignore_user_signals()  # from the start: by default they would end us, names unreleased
    try:
        account = _account(args)
    except PrivilegeError as exc:
        streams.error(str(exc))
        return EXIT_USAGE
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    try:
        raise_open_files(config)
    except LimitError as exc:
        streams.error(str(exc))
        return EXIT_SYSTEM
    try:
        streams.emit(describe(config))
    except OSError:  # closed, full or unread: the description is a courtesy, serving is the job
        streams.discard("stdout")
    logs.configure(args.log_level, args.log_format)
    # Mapped before the fork, so that every worker shares it (see responder.health.board).
    board = WorkerBoard(config.daemon.workers) if config.daemon.workers > 1 else None
    worker, server = workers.spawn(config.daemon.workers - 1)
    if worker > 0:  # perhaps a replacement, long after start: serve what the others serve
        config = _reread(args, config)
    code = _serve(config, args, worker, server, Serving(board, account))
    streams.settle()  # a stream that cannot be flushed must not turn the exit status into 120
    if worker > 0:  # leave without running the parent's exit handlers
        os._exit(code)
    if server is not None:
        server.close()
    return code


@dataclass(frozen=True, slots=True)
class Serving:
    """What every serving process shares, set up before the fork."""

    board: WorkerBoard | None  # the workers' counters, for /metrics
    account: Account | None  # --user/--group: who to become after binding


def _reread(args: argparse.Namespace, config: Config) -> Config:
    """The config file as it is now; ``config`` if it has become invalid (logged)."""
    if args.config is None:
        return config
    try:
        return with_capture_options(load_config(args.config), args)
    except ConfigError as exc:
        logging.getLogger(__name__).error("worker: %s; serving the config read at start", exc)
        return config


COMMANDS = (
    Command(
        "run", "serve in the foreground until SIGTERM/SIGINT; SIGHUP reloads", _run_options, _run
    ),
    Command("check", "validate the config and print what would be served", _config_option, _check),
    Command("probe", tools.PROBE_HELP, tools.probe_options, tools.run_probe),
    Command("audit", tools.AUDIT_HELP, tools.audit_options, tools.run_audit),
    Command("replay", tools.REPLAY_HELP, tools.replay_options, tools.run_replay),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cozen-responder",
        description="Answer DNS, NetBIOS and SMB identity for each node's Cozen name.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands below"
    )
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.add_options(sub)
        sub.set_defaults(handler=command.run)
    return parser


def _version() -> str:
    """The installed distribution's version, else the package's own constant."""
    try:
        return metadata.version("cozen-responder")
    except metadata.PackageNotFoundError:
        return __version__


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    streams.reopen_closed()  # before any socket can take fd 0, 1 or 2
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _serve(
    config: Config,
    args: argparse.Namespace,
    worker: int,
    server: workers.ForkServer | None,
    serving: Serving,
) -> int:
    try:
        with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
            if worker > 0:
                runner.run(
                    run_until_signalled(
                        config,
                        args.config,
                        worker=worker,
                        board=serving.board,
                        account=serving.account,
                    )
                )
            else:
                runner.run(_supervise(config, args, server, serving))
    except BindError as exc:
        streams.error(str(exc))
        return EXIT_BIND
    except PrivilegeError as exc:
        streams.error(str(exc))
        return EXIT_SYSTEM
    except CaptureUnwritable as exc:
        streams.error(str(exc))
        return EXIT_CONFIG
    return 0


async def _supervise(
    config: Config,
    args: argparse.Namespace,
    server: workers.ForkServer | None,
    serving: Serving,
) -> None:
    """Serve as worker 0 while the workers are supervised; stop them all at the end."""
    loop = asyncio.get_running_loop()
    supervisor = None if server is None else workers.Supervisor(loop, server)
    try:
        await run_until_signalled(
            config,
            args.config,
            forward_to=[] if supervisor is None else supervisor.pids,
            board=serving.board,
            account=serving.account,
        )
    finally:
        if supervisor is not None:
            await supervisor.stop()


if __name__ == "__main__":
    raise SystemExit(main())
