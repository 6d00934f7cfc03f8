"""Workloads and the load generators that drive them (all pinned to CPU 1).

- closed loop ("max"): dnsperf for DNS, the C loadgen with a window of
  outstanding queries for NBNS, the SMB handshake driver for SMB;
- open loop ("10k", "80%"): the C loadgen at a fixed offered rate.

Every run returns the loadgen's JSON shape (sent, received, lost,
answered_qps, latency percentiles in µs; dnsperf gives only the mean), to
which `measure` adds the server's CPU seconds over the run and the CPU
microseconds per answered query.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import records
from benchmarks.records import CLIENT_COOKIE, COOKIE_OPTION, DNS_LISTEN, Cluster
from benchmarks.servers import HERE, RunningServer

LOAD_CPU = "1"
NBNS_WINDOW = 64
DNSPERF_OUTSTANDING = 64
SMB_CONCURRENCY = 4
# Paired latency: turns short enough that machine drift cancels, long enough
# (500 queries at 10k/s) that each turn is a steady open-loop stretch.
PAIRED_TURN_MS = 50
PAIRED_FIGURES = ("sent", "lost", "p50_us", "p99_us", "p999_us")

Result = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "dns", "nbns" or "smb"
    nodes: int = 2
    qtypes: tuple[str, ...] = ()
    edns: bool = False
    status: bool = False

    def queries(self, cluster: Cluster) -> list[bytes]:
        if self.kind == "dns":
            return records.dns_queries(cluster, self.qtypes, self.edns)
        if self.kind == "nbns":
            return records.nbns_queries(cluster, self.status)
        return []  # SMB handshakes are built by the handshake driver

    def target(self, cluster: Cluster) -> tuple[str, int]:
        return records.service_address(self.kind, cluster)


WORKLOADS = [
    Workload("dns-a", "dns", qtypes=("A",)),
    Workload("dns-a-edns", "dns", qtypes=("A",), edns=True),
    Workload("dns-ptr", "dns", qtypes=("PTR",)),
    Workload("dns-ptr-edns", "dns", qtypes=("PTR",), edns=True),
    Workload("dns-1000-nodes", "dns", nodes=1000, qtypes=("A", "PTR")),
    Workload("nbns-query", "nbns"),
    Workload("nbns-status", "nbns", status=True),
    Workload("smb-handshake", "smb"),
]


@dataclass(frozen=True)
class Bounds:
    """How long and how many queries one run may take."""

    duration: float
    count: int


def _run_json(argv: list[str], timeout: float) -> Result:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
    result: Result = json.loads(out.stdout)
    return result


def run_loadgen(
    build: Path,
    workdir: Path,
    cluster: Cluster,
    wl: Workload,
    bounds: Bounds,
    mode: list[str],
    paired: str | None = None,
    turn_ms: int = PAIRED_TURN_MS,
) -> Result:
    """mode is ["-r", RATE] (open loop) or ["-w", WINDOW] (closed loop).

    ``paired``: the address of a reference on the same port; the open loop then
    alternates between the server and it in turns of ``turn_ms``, and the
    reference's figures come back as ``paired_*`` beside the server's own.
    """
    path = records.write_blobs(workdir / f"queries-{wl.name}.bin", wl.queries(cluster))
    address, port = wl.target(cluster)
    argv = ["taskset", "-c", LOAD_CPU, str(build / "loadgen"), "-s", address, "-p", str(port)]
    if paired is not None:
        argv += ["-s", paired, "-S", str(turn_ms)]
    argv += ["-f", str(path), *mode, "-d", str(bounds.duration), "-n", str(bounds.count)]
    result = _run_json([*argv, "-T", "500"], bounds.duration + 30)
    for reference in result.pop("beside", [])[:1]:
        result.update({f"paired_{key}": reference[key] for key in PAIRED_FIGURES})
        result["p50_vs_paired"] = result["p50_us"] / max(reference["p50_us"], 1e-9)
    return result


DNSPERF_PATTERNS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "received": r"NOERROR (\d+)",
    "elapsed_s": r"Run time \(s\):\s+([\d.]+)",
    "mean_us": r"Average Latency \(s\):\s+([\d.]+)",
}


def paired_turn_ms(bounds: Bounds, rate: float) -> int:
    """PAIRED_TURN_MS, or shorter when the count bounds the run (--quick), so both get turns."""
    run_ms = 1000 * min(bounds.duration, bounds.count / max(rate, 1.0))
    return max(1, min(PAIRED_TURN_MS, int(run_ms / 4)))


def parse_dnsperf(text: str) -> Result:
    found = {k: re.search(p, text) for k, p in DNSPERF_PATTERNS.items()}
    values = {k: float(m.group(1)) if m else 0.0 for k, m in found.items()}
    elapsed = max(values["elapsed_s"], 1e-9)
    return {
        "sent": int(values["sent"]),
        "received": int(values["received"]),
        "lost": int(values["sent"] - values["received"]),
        "elapsed_s": elapsed,
        "offered_qps": values["sent"] / elapsed,
        "answered_qps": values["received"] / elapsed,
        "mean_us": values["mean_us"] * 1e6,
    }


def run_dnsperf(workdir: Path, cluster: Cluster, wl: Workload, bounds: Bounds) -> Result:
    lines = [f"{name} {qtype}" for name, qtype in records.questions(cluster, wl.qtypes)]
    path = workdir / f"dnsperf-{wl.name}.txt"
    path.write_text("\n".join(lines) + "\n")
    runs = max(1, math.ceil(bounds.count / len(lines)))
    argv = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", DNS_LISTEN, "-p", "53", "-d", str(path)]
    argv += ["-l", str(bounds.duration), "-n", str(runs), "-c", "1", "-T", "1", "-t", "1"]
    argv += ["-q", str(DNSPERF_OUTSTANDING)]
    if wl.edns:
        argv += ["-e", "-E", f"{COOKIE_OPTION}:{CLIENT_COOKIE.hex()}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=bounds.duration + 30)
    if out.returncode != 0:
        raise RuntimeError(f"dnsperf failed: {out.stderr[-500:]}")
    return parse_dnsperf(out.stdout)


def run_smb(python: str, cluster: Cluster, bounds: Bounds) -> Result:
    argv = ["taskset", "-c", LOAD_CPU, python, str(HERE / "smbload.py")]
    argv += ["--address", cluster.nodes[0].ip, "--duration", str(bounds.duration)]
    argv += ["--count", str(bounds.count), "--concurrency", str(SMB_CONCURRENCY)]
    return _run_json(argv, bounds.duration + 60)


def measure(server: RunningServer, run: Callable[[], Result]) -> Result:
    """Run one load and add the server's CPU time over it."""
    user_before, system_before = server.cpu_times()
    result = run()
    user_after, system_after = server.cpu_times()
    user, cpu = user_after - user_before, user_after + system_after - user_before - system_before
    result["cpu_s"] = cpu
    result["cpu_user_s"] = user
    received = result["received"]
    result["cpu_us_per_answer"] = cpu * 1e6 / received if received else None
    result["user_us_per_answer"] = user * 1e6 / received if received else None
    return result
