"""Command line: ``cozen-responder COMMAND [options]``, one entry per command.

:data:`COMMANDS` is the table: each :class:`Command` names itself, adds its
options to its own sub-parser and runs with the parsed arguments, returning
the exit status. A new command (probe, audit, replay) is one more entry.

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
from dataclasses import dataclass

from responder import workers
from responder.app import run_until_signalled
from responder.config import Config, ConfigError, load_config
from responder.describe import describe
from responder.health.board import WorkerBoard
from responder.net.listeners import BindError

EXIT_CONFIG = 1
EXIT_BIND = 3


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
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )


def _load_and_describe(args: argparse.Namespace) -> Config | None:
    """The config named by ``--config``, printed; None (reported on stderr) when invalid."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"cozen-responder: {exc}", file=sys.stderr)
        return None
    print(describe(config), flush=True)
    return config


def _check(args: argparse.Namespace) -> int:
    return EXIT_CONFIG if _load_and_describe(args) is None else 0


def _run(args: argparse.Namespace) -> int:
    config = _load_and_describe(args)
    if config is None:
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Mapped before the fork, so that every worker shares it (see responder.health.board).
    board = WorkerBoard(config.daemon.workers) if config.daemon.workers > 1 else None
    worker, pids = workers.spawn(config.daemon.workers - 1)
    code = _serve(config, args, worker, pids, board)
    if worker > 0:  # leave without running the parent's exit handlers
        sys.stderr.flush()
        os._exit(code)
    workers.reap(pids)
    return code


COMMANDS = (
    Command(
        "run", "serve in the foreground until SIGTERM/SIGINT; SIGHUP reloads", _run_options, _run
    ),
    Command("check", "validate the config and print what would be served", _config_option, _check),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cozen-responder",
        description="Answer DNS, NetBIOS and SMB identity for each node's Cozen name.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.add_options(sub)
        sub.set_defaults(handler=command.run)
    return parser


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _serve(
    config: Config,
    args: argparse.Namespace,
    worker: int,
    worker_pids: list[int],
    board: WorkerBoard | None = None,
) -> int:
    try:
        with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
            serving = run_until_signalled(
                config, args.config, worker=worker, forward_to=worker_pids, board=board
            )
            runner.run(serving)
    except BindError as exc:
        print(f"cozen-responder: {exc}", file=sys.stderr)
        return EXIT_BIND
    return 0


if __name__ == "__main__":
    sys.exit(main())
