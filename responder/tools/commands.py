"""The ``probe`` and ``audit`` entries of :data:`responder.cli.COMMANDS`: options and runners.

Only argparse is imported here; the probe machinery is imported when one of
these commands runs, so ``run`` never loads it.

Exit statuses: ``probe`` 0 when every answering protocol presents the
``--expect`` name (or no ``--expect``), 1 when one presents another name
(silence is reported, not counted), 2 for bad usage; ``audit`` 0 when every
check passes, 1 on any failure or a bad config, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from responder.tools.probe import ProbeOptions

EXIT_MISMATCH = 1
EXIT_USAGE = 2

PROBE_HELP = "show what a scanner sees at each address (DNS, NetBIOS, SMB, NTLM)"
AUDIT_HELP = "probe every node of the config and check each is distinguishable everywhere"


def probe_options(parser: argparse.ArgumentParser) -> None:
    """``probe ADDRESS... [--expect NAME] [--json] [--timeout S] [--dns-server] [...]``."""
    parser.add_argument("addresses", nargs="+", metavar="ADDRESS", help="IPv4 or IPv6 address")
    parser.add_argument(
        "--expect", metavar="NAME", help="exit 1 if a protocol presents another name"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    _common_options(parser)
    parser.add_argument(
        "--dns-server",
        metavar="ADDRESS[:PORT]",
        help="resolver for the PTR and A lookups (default: first nameserver of /etc/resolv.conf)",
    )
    parser.add_argument(
        "--public-name",
        metavar="NAME",
        help="also try the cluster's public name as NBSS called name",
    )


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="longest wait for each answer; an unanswered protocol is reported silent (default 2)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, metavar="N", help="addresses probed at once"
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 600")
    return value


def parse_server(text: str) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT`` or ``[V6]:PORT`` as (address, port), port 53 by default.

    Raises:
        ValueError: not an IP address, or a port outside 1..65535.
    """
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    ipaddress.ip_address(host)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port {port!r} is not in 1..65535")
    return host, int(port)


def run_probe(args: argparse.Namespace) -> int:
    """``cozen-responder probe``."""
    import asyncio

    from responder import streams
    from responder.tools import probe, render

    try:
        options = _probe_options(args)
        for address in args.addresses:
            ipaddress.ip_address(address)
    except ValueError as exc:
        streams.error(f"probe: {exc}")
        return EXIT_USAGE
    progress = _progress if len(args.addresses) > 1 and sys.stderr.isatty() else None
    results = asyncio.run(
        probe.probe_many(args.addresses, options, concurrency=args.concurrency, progress=progress)
    )
    _emit(render.to_json(results) if args.json else render.to_table(results))
    for result in results:
        if result.mismatched:
            streams.error(
                f"probe: {result.address}: {', '.join(result.mismatched)} "
                f"present a name other than {result.expect}"
            )
    return EXIT_MISMATCH if any(r.mismatched for r in results) else 0


def _probe_options(args: argparse.Namespace) -> ProbeOptions:
    from responder.tools.probe import ProbeOptions, system_resolver

    server = parse_server(args.dns_server) if args.dns_server else system_resolver()
    for name in (args.expect, args.public_name):
        if name is not None and not name.strip():
            raise ValueError("a name must not be empty")
    return ProbeOptions(
        timeout=args.timeout, dns_server=server, public_name=args.public_name, expect=args.expect
    )


def _progress(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rprobed {done}/{total}", end=end, file=sys.stderr, flush=True)


def _emit(text: str) -> None:
    from responder import streams

    try:
        streams.emit(text)
    except BrokenPipeError:
        streams.die_of_sigpipe()
    except OSError as exc:
        streams.discard("stdout")
        streams.error(f"cannot write to standard output: {exc.strerror}")


def audit_options(parser: argparse.ArgumentParser) -> None:
    """``audit [--config FILE] [--public ADDRESS] [--json] [--timeout S]``."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config (default: the embedded two-node loopback example)",
    )
    parser.add_argument(
        "--public", metavar="ADDRESS", help="also probe the production (public) address"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    _common_options(parser)


def run_audit(args: argparse.Namespace) -> int:
    """``cozen-responder audit``."""
    import asyncio

    from responder import streams
    from responder.config import ConfigError, load_config
    from responder.tools import audit

    try:
        if args.public is not None:
            ipaddress.ip_address(args.public)
    except ValueError as exc:
        streams.error(f"audit: --public: {exc}")
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        streams.error(str(exc))
        return EXIT_MISMATCH
    results, extras, public = asyncio.run(
        audit.gather(config, args.public, args.timeout, args.concurrency)
    )
    audits = audit.assemble(config, results, extras, public)
    probed = [*results, *([public] if public is not None else [])]
    _emit(audit.to_json(audits, probed) if args.json else audit.to_table(audits))
    return 0 if all(a.ok for a in audits) else EXIT_MISMATCH


REPLAY_HELP = "re-answer the requests of captures (pcap, pcapng) and diff with their answers"
EXIT_UNREADABLE = 2


def replay_options(parser: argparse.ArgumentParser) -> None:
    """``replay --config FILE CAPTURE... [--against ADDRESS] [--json] [--timeout S]``."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config (default: the embedded two-node loopback example)",
    )
    parser.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng file")
    parser.add_argument(
        "--against",
        action="append",
        metavar="ADDRESS|CAPTURED=LIVE",
        help="re-send the requests to a live server instead (repeat CAPTURED=LIVE to route)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="with --against: longest wait for each answer (default 1)",
    )


def run_replay(args: argparse.Namespace) -> int:
    """``cozen-responder replay``: exit 0 all matched, 1 any difference, 2 unreadable capture."""
    from protocols.capture.pcapng import UnreadableCapture
    from responder import streams
    from responder.config import ConfigError, load_config
    from responder.tools import replay, replay_answer

    try:
        default, routes = parse_against(args.against or [])
    except ValueError as exc:
        streams.error(f"replay: --against: {exc}")
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        streams.error(str(exc))
        return EXIT_MISMATCH
    try:
        segments = replay.load_segments(args.captures)
    except OSError as exc:
        streams.error(f"replay: {exc.filename}: cannot read: {exc.strerror}")
        return EXIT_UNREADABLE
    except UnreadableCapture as exc:
        streams.error(f"replay: unreadable capture: {exc}")
        return EXIT_UNREADABLE
    now = segments[0].timestamp if segments else 0.0
    answers: replay_answer.Answers = (
        replay_answer.LiveAnswers(default, routes, args.timeout)
        if args.against
        else replay_answer.LocalAnswers(config, now)
    )
    outcomes = replay.replay(segments, config, answers)
    _emit(replay.to_json(outcomes) if args.json else replay.to_table(outcomes))
    return replay.exit_status(outcomes)


def parse_against(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """``--against`` values: one ADDRESS (the default) and CAPTURED=LIVE routes.

    Raises:
        ValueError: not an IP address, or two default addresses.
    """
    default: str | None = None
    routes: dict[str, str] = {}
    for value in values:
        captured, _, live = value.rpartition("=")
        ipaddress.ip_address(live)
        if captured:
            routes[str(ipaddress.ip_address(captured))] = live
        elif default is not None:
            raise ValueError(f"{value!r}: a second default address (use CAPTURED=LIVE)")
        else:
            default = live
    return default, routes
