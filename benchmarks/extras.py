"""Measurements beyond the side-by-side table, for our daemon only.

- reload under load: the 1,000-node cluster served at 10k queries/s (open
  loop, the C loadgen) for the nodes that stay; one second in, the config
  file is rewritten with the last node renamed and the daemon gets SIGHUP.
  Reported: how long the reload took (SIGHUP to the "reloaded" log line),
  the loss and the latency percentiles over the whole run; then how long the
  1,000-node daemon takes to stop (SIGTERM to exit; the README promises 2 s).
  These timings live here, not in the test suite, whose machine may be busy.
- memory under flood: resident set size (the daemon and its workers) when
  idle, then sampled every 0.25 s during a closed-loop flood of 20 s whose
  queries come in thousands of letter-case spellings with EDNS cookies, so
  the answer memo fills and is cleared over and over.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

from benchmarks import records, servers
from benchmarks.loads import LOAD_CPU, NBNS_WINDOW, Result
from benchmarks.records import DNS_LISTEN, Cluster
from benchmarks.servers import Context, RunningServer

RELOAD_RATE = 10_000
RELOAD_AT = 1.0  # seconds into the run
FLOOD_SPELLINGS = 10_000
SAMPLE_EVERY = 0.25


def _loadgen(
    ctx: Context, queries: list[bytes], name: str, mode: list[str], seconds: float
) -> subprocess.Popen[str]:
    path = records.write_blobs(ctx.workdir / f"queries-{name}.bin", queries)
    argv = ["taskset", "-c", LOAD_CPU, str(ctx.build / "loadgen"), "-s", DNS_LISTEN, "-p", "53"]
    argv += ["-f", str(path), *mode, "-d", str(seconds), "-n", "100000000", "-T", "500"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], seconds: float) -> Result:
    out, _ = proc.communicate(timeout=seconds + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited {proc.returncode}")
    result: Result = json.loads(out)
    return result


def _renamed_last(cluster: Cluster) -> Cluster:
    last = cluster.nodes[-1]
    nodes = (*cluster.nodes[:-1], records.Node(last.cozen_name + "X", last.ip))
    return Cluster(cluster.name, cluster.domain, cluster.workgroup, nodes)


def reload_under_load(
    ctx: Context, server: RunningServer, cluster: Cluster, seconds: float
) -> Result:
    """SIGHUP with one node renamed while the others are queried at 10k/s."""
    kept = Cluster(cluster.name, cluster.domain, cluster.workgroup, cluster.nodes[:-1])
    queries = records.dns_queries(kept, ("A", "PTR"), edns=False)
    seconds = max(seconds, RELOAD_AT + 1.0)
    proc = _loadgen(ctx, queries, "reload", ["-r", str(RELOAD_RATE)], seconds)
    time.sleep(RELOAD_AT)
    text = servers.cozen_config(_renamed_last(cluster), fast_path=True)
    servers.cozen_config_path(ctx).write_text(text)
    before = server.log.read_text(errors="replace").count("reloaded")
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGHUP)
    took = None
    while time.monotonic() - sent < seconds + 5:
        if server.log.read_text(errors="replace").count("reloaded") > before:
            took = time.monotonic() - sent
            break
        time.sleep(0.005)
    result = _finish(proc, seconds)
    stop_s = _stop_time(server)
    return {
        "measure": "reload",
        "nodes": len(cluster.nodes),
        "reload_s": took,
        "stop_s": stop_s,
        **result,
    }


def _stop_time(server: RunningServer, patience: float = 30.0) -> float | None:
    """Seconds from SIGTERM to the daemon's exit, or None if it is still running."""
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(patience)
    except subprocess.TimeoutExpired:
        return None  # the caller's stop() kills it
    return time.monotonic() - sent


def _spellings(cluster: Cluster, count: int) -> list[bytes]:
    rng = random.Random(0x20)
    names = [n.fqdn(cluster.domain) for n in cluster.nodes]
    out = []
    for i in range(count):
        name = "".join(c.upper() if rng.random() < 0.5 else c for c in names[i % len(names)])
        out.append(records.dns_query(name, "A", edns=True))
    return out


def memory_under_flood(
    ctx: Context, server: RunningServer, cluster: Cluster, seconds: float
) -> Result:
    """Idle RSS, then the peak over a closed-loop flood of many distinct spellings."""
    idle = server.rss_bytes()
    queries = _spellings(cluster, FLOOD_SPELLINGS)
    proc = _loadgen(ctx, queries, "flood", ["-w", str(NBNS_WINDOW)], seconds)
    peak = idle
    while proc.poll() is None:
        peak = max(peak, server.rss_bytes())
        time.sleep(SAMPLE_EVERY)
    result = _finish(proc, seconds)
    mib = 1024 * 1024
    return {
        "measure": "memory",
        "nodes": len(cluster.nodes),
        "flood_s": seconds,
        "idle_mib": idle / mib,
        "peak_mib": peak / mib,
        "growth_mib": (peak - idle) / mib,
        **result,
    }
