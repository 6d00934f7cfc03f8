"""Benchmark suite: our daemon side by side with reference servers, in one run.

Run from the repository root as root:  python -m benchmarks.run [options]

The outer process installs missing tools, builds the C programs, creates a
network namespace of its own (lo up), re-runs itself inside it with
`--inside`, and deletes the namespace at the end, also on error or Ctrl-C.
Inside, each server is started in turn for each protocol kind, pinned to
CPU 0, and driven from CPU 1; every measurement is repeated and reported as
median and range in benchmarks/results/ (bench.md, bench.json, bench.png).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import FrameType

from benchmarks import amplification, extras, install, loads, report, servers
from benchmarks.loads import Bounds, Result, Workload
from benchmarks.records import PAIRED_LISTEN, Cluster, make_cluster
from benchmarks.servers import HERE, REPO, Context, RunningServer, ServerError

QUICK_SERVERS = ("c-ref", "cozen")
RELOAD_NODES = 1000
OPEN_LOOP_RATE = 10_000.0
SHARE_OF_MAX = 0.8
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SERVER_TOOLS = {"knot": "knotd", "dnsmasq": "dnsmasq", "nmbd": "nmbd", "smbd": "smbd"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run: C reference and cozen")
    parser.add_argument("--only", choices=("dns", "nbns", "smb"), help="one protocol kind")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--servers", help="comma-separated subset of " + ",".join(servers.SERVERS))
    names = ",".join(w.name for w in loads.WORKLOADS)
    parser.add_argument("--workloads", help="comma-separated subset of " + names)
    parser.add_argument("--flood", type=float, default=20.0, help="seconds of the memory flood")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.duration, args.flood = 1, 0.3, 1.0
    return args


def chosen_servers(args: argparse.Namespace) -> list[str]:
    if args.servers:
        labels: list[str] = args.servers.split(",")
        unknown = set(labels) - set(servers.SERVERS)
        if unknown:
            sys.exit(f"unknown server(s): {', '.join(sorted(unknown))}")
        return labels
    return list(QUICK_SERVERS) if args.quick else list(servers.SERVERS)


def chosen_workloads(args: argparse.Namespace) -> list[Workload]:
    named = set(args.workloads.split(",")) if args.workloads else None
    if named and named - {w.name for w in loads.WORKLOADS}:
        sys.exit(f"unknown workload(s): {', '.join(sorted(named))}")
    return [
        w
        for w in loads.WORKLOADS
        if args.only in (None, w.kind) and (named is None or w.name in named)
    ]


# --- outer process: set-up and the namespace -------------------------------------


def prepare(args: argparse.Namespace) -> None:
    kinds = {w.kind for w in chosen_workloads(args)}
    commands = ["gcc", "taskset", "ip"] + (["dnsperf"] if "dns" in kinds else [])
    commands += [SERVER_TOOLS[s] for s in chosen_servers(args) if s in SERVER_TOOLS]
    install.ensure_commands(commands)
    install.ensure_modules(sys.executable, install.PIP_PACKAGES)
    install.build_c(HERE / "c", HERE / "build")


def run_in_namespace(argv: list[str]) -> int:
    """Create a namespace, run this suite inside it, always delete it."""
    name = f"czh-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    child: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        inner = [sys.executable, "-m", "benchmarks.run", *argv, "--inside", name]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        child = subprocess.Popen(["ip", "netns", "exec", name, *inner], env=env)
        return child.wait()
    except KeyboardInterrupt:
        if child is not None:
            child.send_signal(signal.SIGTERM)  # it stops its servers, then exits
            child.wait(timeout=60)
        return 130
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# --- inner process: the measurements ---------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """First SIGINT/SIGTERM: unwind (stopping servers); later ones are ignored."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def bounds(args: argparse.Namespace, kind: str) -> Bounds:
    if not args.quick:
        return Bounds(args.duration, 100_000_000)
    return Bounds(args.duration, 40 if kind == "smb" else 300)


def closed_loop(ctx: Context, cluster: Cluster, wl: Workload, b: Bounds) -> Callable[[], Result]:
    if wl.kind == "smb":
        return partial(loads.run_smb, ctx.python, cluster, b)
    if wl.kind == "dns":
        return partial(loads.run_dnsperf, ctx.workdir, cluster, wl, b)
    window = ["-w", str(loads.NBNS_WINDOW)]
    return partial(loads.run_loadgen, ctx.build, ctx.workdir, cluster, wl, b, window)


def open_loop(
    ctx: Context, cluster: Cluster, wl: Workload, b: Bounds, rate: float, paired: str | None = None
) -> Callable[[], Result]:
    mode = ["-r", f"{max(rate, 1.0):.0f}"]
    turn_ms = loads.paired_turn_ms(b, rate)
    return partial(loads.run_loadgen, ctx.build, ctx.workdir, cluster, wl, b, mode, paired, turn_ms)


def measure_once(
    ctx: Context,
    server: RunningServer,
    wl: Workload,
    cluster: Cluster,
    b: Bounds,
    rep: int,
    paired: str | None = None,
) -> list[Result]:
    """Closed loop first, then open loop at 10k/s and at 80 % of that closed-loop max.

    With the address of a ``paired`` reference, the 10k/s run alternates
    between the server and it (each gets the full rate in its turns), so the
    latency ratio to C is measured under the same conditions of the machine.
    """
    base = {"server": server.label, "workload": wl.name, "nodes": wl.nodes, "rep": rep}
    top_run = {**base, "load": "max", **loads.measure(server, closed_loop(ctx, cluster, wl, b))}
    runs = [top_run]
    if wl.kind == "smb":
        return runs
    for load, rate, with_ref in (
        ("10k", OPEN_LOOP_RATE, paired),
        ("80%", SHARE_OF_MAX * top_run["answered_qps"], None),
    ):
        run = open_loop(ctx, cluster, wl, b, rate, with_ref)
        runs.append({**base, "load": load, "rate": rate, **loads.measure(server, run)})
    return runs


@contextlib.contextmanager
def running(start: Callable[..., RunningServer], *args: object) -> Iterator[RunningServer]:
    """A started server, stopped on the way out whatever happens."""
    server = start(*args)
    try:
        yield server
    finally:
        server.stop()


def serve_and_measure(
    args: argparse.Namespace,
    ctx: Context,
    label: str,
    workloads: list[Workload],
    cluster: Cluster,
    rep: int,
) -> tuple[list[Result], list[str]]:
    """One repetition of every workload on one freshly started server."""
    kind = workloads[0].kind
    runs: list[Result] = []
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        try:
            paired = None
            if kind in servers.C_KINDS:
                stack.enter_context(running(servers.start_paired, ctx, kind, cluster))
                paired = PAIRED_LISTEN
            server = stack.enter_context(running(servers.start, ctx, label, kind, cluster))
        except ServerError as exc:
            return [], [f"{label} ({kind}, {len(cluster.nodes)} nodes): {exc}"]
        for wl in workloads:
            print(f"  {label:14} {wl.name} (repetition {rep + 1})", flush=True)
            problem = servers.check_answers(kind, cluster, wl.queries(cluster))
            try:
                b = bounds(args, wl.kind)
                runs += [] if problem else measure_once(ctx, server, wl, cluster, b, rep, paired)
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
                problem = f"load failed: {exc}"
            if problem:
                errors.append(f"{label} {wl.name}: {problem}")
    return runs, errors


def measure_extras(args: argparse.Namespace, tmp: Path) -> tuple[list[Result], list[str]]:
    """Reload under load (1,000 nodes) and memory under flood (2 nodes), cozen only."""
    found: list[Result] = []
    errors: list[str] = []
    plans = [
        (RELOAD_NODES, extras.reload_under_load, args.duration),
        (2, extras.memory_under_flood, args.flood),
    ]
    for nodes, measure, seconds in plans:
        cluster = make_cluster(nodes)
        workdir = Path(tmp) / f"extras-{measure.__name__}"
        workdir.mkdir()
        ctx = Context(sys.executable, HERE / "build", workdir)
        print(f"  cozen          {measure.__name__} ({nodes} nodes)", flush=True)
        try:
            server = servers.start(ctx, "cozen", "dns", cluster)
        except ServerError as exc:
            errors.append(f"cozen {measure.__name__}: {exc}")
            continue
        try:
            found.append(measure(ctx, server, cluster, seconds))
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
            errors.append(f"cozen {measure.__name__}: {exc}")
        finally:
            server.stop()
    return found, errors


def measure_amplification(tmp: Path, kinds: set[str]) -> tuple[list[amplification.Row], list[str]]:
    """Bytes out over bytes in for each DNS and NBNS message type, cozen only."""
    rows: list[amplification.Row] = []
    errors: list[str] = []
    cluster = make_cluster(2)
    for kind in sorted(kinds & {"dns", "nbns"}):
        workdir = Path(tmp) / f"amplification-{kind}"
        workdir.mkdir()
        ctx = Context(sys.executable, HERE / "build", workdir)
        print(f"  cozen          amplification ({kind})", flush=True)
        try:
            with running(servers.start, ctx, "cozen", kind, cluster):
                rows += amplification.measure(cluster, kind, servers.udp_exchange)
        except ServerError as exc:
            errors.append(f"cozen amplification: {exc}")
    errors += [
        f"amplification over {amplification.MAX_FACTOR}x or unanswered: {p}"
        for p in amplification.too_large(rows)
    ]
    return rows, errors


def run_suite(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {int(loads.LOAD_CPU)})
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    labels, workloads = chosen_servers(args), chosen_workloads(args)
    runs: list[Result] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="czh-bench-") as tmp:
        groups = dict.fromkeys((w.nodes, w.kind) for w in workloads)
        clusters = {nodes: make_cluster(nodes) for nodes, _ in groups}
        # Interleaved: every server once (each of its groups back to back), then
        # every server again, so that slow drift in the machine (other tenants,
        # clock) falls on all of them alike, and each figure compared across
        # groups (1,000 nodes against 2) comes from measurements a minute apart.
        for rep in range(args.repeat):
            for label in labels:
                for nodes, kind in groups:
                    if kind not in servers.SERVERS[label].kinds:
                        continue
                    group = [w for w in workloads if (w.nodes, w.kind) == (nodes, kind)]
                    workdir = Path(tmp) / f"{label}-{kind}-{nodes}-{rep}"
                    workdir.mkdir()
                    ctx = Context(sys.executable, HERE / "build", workdir)
                    found, failed = serve_and_measure(args, ctx, label, group, clusters[nodes], rep)
                    runs += found
                    errors += failed
        measured: list[Result] = []
        if "cozen" in labels and any(w.kind == "dns" for w in workloads) and not args.workloads:
            measured, failed = measure_extras(args, Path(tmp))
            errors += failed
        amplified: list[amplification.Row] = []
        if "cozen" in labels and not args.workloads:
            amplified, failed = measure_amplification(Path(tmp), {w.kind for w in workloads})
            errors += failed
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "repeat": args.repeat,
        "duration": args.duration,
        "quick": args.quick,
        "servers": labels,
    }
    errors = list(dict.fromkeys(errors))  # the same failure in every repetition, once
    paths = report.write(args.out, runs, meta, errors, measured, amplified)
    print("\n".join(["wrote:", *(f"  {p}" for p in paths), *(f"error: {e}" for e in errors)]))
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.inside:
        try:
            return run_suite(args)
        except KeyboardInterrupt:
            print("interrupted; servers stopped", file=sys.stderr)
            return 130
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (network namespace, ports 53/137/445)")
    prepare(args)
    signal.signal(signal.SIGTERM, _interrupt)
    return run_in_namespace(argv)


if __name__ == "__main__":
    sys.exit(main())
