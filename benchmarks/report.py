"""Turn raw runs into a markdown table, a JSON file and a PNG chart.

Each run is one dict (server, workload, nodes, load, rep and the load
generator's figures).  Runs of the same (workload, server, load) are reduced
to the median and the range over repetitions; every server is also shown as a
ratio to the C reference measured in the same run and workload.  Latency at
10k/s is also given as a ratio to the C reference running beside the server
in alternating turns of the same load-generator run (per repetition, then the
median): drift in the machine between runs cannot enter that ratio.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks import amplification
from benchmarks.loads import PAIRED_TURN_MS

REFERENCE = "c-ref"
LOADS = ("max", "10k", "80%")
Run = dict[str, Any]


def spread(runs: Iterable[Run], key: str) -> tuple[float, float, float] | None:
    """(median, min, max) of a figure over repetitions, or None if absent."""
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (workload, server) with the spreads of every load."""
    groups: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault((run["workload"], run["server"]), {}).setdefault(run["load"], [])
        groups[(run["workload"], run["server"])][run["load"]].append(run)
    workloads = list(dict.fromkeys(w for w, _ in groups))
    servers = list(dict.fromkeys(s for _, s in groups))
    order = sorted(groups, key=lambda k: (workloads.index(k[0]), servers.index(k[1])))
    rows = []
    for workload, server in order:
        by_load = groups[(workload, server)]
        row: dict[str, Any] = {"workload": workload, "server": server}
        for load, load_runs in by_load.items():
            row[load] = {
                key: spread(load_runs, key)
                for key in (
                    "answered_qps",
                    "cpu_us_per_answer",
                    "user_us_per_answer",
                    "p50_us",
                    "p99_us",
                    "p999_us",
                    "p50_vs_paired",
                    "paired_p50_us",
                )
            }
            sent = sum(r["sent"] for r in load_runs)
            row[load]["loss_pct"] = 100.0 * sum(r["lost"] for r in load_runs) / max(sent, 1)
        rows.append(row)
    return rows


def _figure(row: dict[str, Any], load: str, key: str) -> float | None:
    value = row.get(load, {}).get(key)
    return value[0] if value else None


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _with_range(row: dict[str, Any], load: str, key: str) -> str:
    value = row.get(load, {}).get(key)
    if not value:
        return "–"
    median, low, high = value
    return f"{_fmt(median)} ({_fmt(low)}–{_fmt(high)})"


def _ratio(row: dict[str, Any], ref: dict[str, Any] | None, load: str, key: str) -> str:
    mine = _figure(row, load, key)
    base = _figure(ref, load, key) if ref else None
    if mine is None or not base:
        return "–"
    return f"{mine / base:.2f}×"


def _latency(row: dict[str, Any], load: str) -> str:
    parts = [_figure(row, load, k) for k in ("p50_us", "p99_us", "p999_us")]
    return " / ".join(_fmt(p) for p in parts) if any(parts) else "–"


def _loss(row: dict[str, Any], load: str) -> str:
    return f"{row[load]['loss_pct']:.2f}%" if load in row else "–"


def _paired(row: dict[str, Any]) -> str:
    value = row.get("10k", {}).get("p50_vs_paired")
    if not value:
        return "–"
    median, low, high = value
    return f"{median:.2f}× ({low:.2f}–{high:.2f})"


HEADER = (
    "| workload | server | max answered/s | ×C | CPU µs/answer @max | ×C "
    "| of which user µs | CPU µs/answer @10k | p50 / p99 / p99.9 µs @10k | p50 ×C paired @10k "
    "| loss @10k | p50 / p99 / p99.9 µs @80% | loss @80% |"
)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], errors: list[str]) -> str:
    refs = {r["workload"]: r for r in rows if r["server"] == REFERENCE}
    lines = [
        "# cozen-responder benchmark",
        "",
        f"{meta['when']}, {meta['repeat']} repetition(s) of {meta['duration']} s each; "
        "medians with (min–max) over repetitions; ×C = ratio to the C template "
        "responder in the same run. CPU is the server's own /proc accounting "
        "(utime+stime, threads and children included; 10 ms ticks) over the run, "
        'divided by the answers received; "of which user" is the part spent in the '
        "server's own code (utime), the rest is kernel time. Repetitions are "
        "interleaved (every server once, then again), so drift in the machine "
        "falls on all servers alike. max = closed loop (dnsperf for DNS, "
        "64 outstanding for NBNS, 4 connections for SMB handshakes). "
        '"p50 ×C paired" = the server\'s p50 over the p50 of a second C reference '
        "running beside it on the same CPU, the 10k/s open loop alternating "
        f"between the two in {PAIRED_TURN_MS} ms turns; median (min–max) over repetitions. The "
        "c-ref row's paired ratio is the method's own noise (C against C).",
        "",
        HEADER,
        "|" + "---|" * HEADER.count(" | ") + "---|",
    ]
    for row in rows:
        ref = refs.get(row["workload"])
        cells = [
            row["workload"],
            row["server"],
            _with_range(row, "max", "answered_qps"),
            _ratio(row, ref, "max", "answered_qps"),
            _with_range(row, "max", "cpu_us_per_answer"),
            _ratio(row, ref, "max", "cpu_us_per_answer"),
            _fmt(_figure(row, "max", "user_us_per_answer"), 2),
            _fmt(_figure(row, "10k", "cpu_us_per_answer")),
            _latency(row, "10k"),
            _paired(row),
            _loss(row, "10k"),
            _latency(row, "80%"),
            _loss(row, "80%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if errors:
        lines += ["", "## Errors", "", *[f"- {e}" for e in errors]]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """CPU µs per answer at max load, and latency at 10k qps, per workload and server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    by_key = {(r["workload"], r["server"]): r for r in rows}
    width = 0.8 / max(len(servers), 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(workloads)), 9))
    for i, server in enumerate(servers):
        xs, cpu, lat, lows, highs = [], [], [], [], []
        for j, workload in enumerate(workloads):
            row = by_key.get((workload, server))
            if row is None:
                continue
            x = j - 0.4 + width * (i + 0.5)
            xs.append(x)
            cpu.append(_figure(row, "max", "cpu_us_per_answer") or 0.0)
            p99 = _figure(row, "10k", "p99_us") or 0.0
            lat.append(p99)
            lows.append(p99 - (_figure(row, "10k", "p50_us") or p99))
            highs.append((_figure(row, "10k", "p999_us") or p99) - p99)
        top.bar(xs, cpu, width, label=server)
        bottom.bar(xs, lat, width, label=server, yerr=[lows, highs], capsize=2)
    for axis, title in (
        (top, "server CPU µs per answered query (closed loop, median)"),
        (bottom, "latency at 10k offered/s: bar p99, whisker p50 to p99.9 (µs)"),
    ):
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xticks(range(len(workloads)), workloads, rotation=15)
        axis.grid(axis="y", which="both", alpha=0.3)
    top.legend(ncol=min(len(servers), 4), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


EXTRAS_HEADER = (
    "| measure | nodes | result | sent | lost | p50 / p99 / p99.9 / max µs | answered/s |"
)


def _extra_result(run: Run) -> str:
    if run["measure"] == "reload":
        took, stop = run.get("reload_s"), run.get("stop_s")
        text = "reload did not finish" if took is None else f"reload {took * 1000:.0f} ms"
        return text + (", stop did not finish" if stop is None else f", stop {stop * 1000:.0f} ms")
    return (
        f"RSS idle {run['idle_mib']:.1f} MiB, peak {run['peak_mib']:.1f} MiB "
        f"(+{run['growth_mib']:.1f}) over {run['flood_s']:.0f} s"
    )


def extras_markdown(extras: list[Run]) -> list[str]:
    """The reload-under-load and memory-under-flood rows (cozen only)."""
    if not extras:
        return []
    lines = ["", "## cozen: reload under load, memory under flood", "", EXTRAS_HEADER]
    lines.append("|" + "---|" * EXTRAS_HEADER.count(" | ") + "---|")
    for run in extras:
        keys = ("p50_us", "p99_us", "p999_us", "max_us")
        latency = " / ".join(_fmt(run.get(k)) for k in keys)
        cells = [
            run["measure"],
            str(run["nodes"]),
            _extra_result(run),
            str(run["sent"]),
            str(run["lost"]),
            latency,
            _fmt(run.get("answered_qps")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


SCALE_WORKLOAD = "dns-1000-nodes"
SCALE_BASES = ("dns-a", "dns-ptr")  # its questions (A and PTR) with 2 nodes


def scale_ratios(runs: list[Run]) -> dict[str, list[float]]:
    """Per server, per repetition: CPU per answer at 1,000 nodes over the 2-node mean.

    Both sides of each ratio come from the same repetition, a minute apart.
    """
    cpu = {
        (r["workload"], r["server"], r["rep"]): r["cpu_us_per_answer"]
        for r in runs
        if r["load"] == "max" and r.get("cpu_us_per_answer")
    }
    ratios: dict[str, list[float]] = {}
    for (workload, server, rep), big in cpu.items():
        bases = [cpu.get((b, server, rep)) for b in SCALE_BASES]
        if workload == SCALE_WORKLOAD and all(bases):
            ratios.setdefault(server, []).append(big / statistics.mean(b or 0.0 for b in bases))
    return ratios


def scale_markdown(runs: list[Run]) -> list[str]:
    ratios = scale_ratios(runs)
    if not ratios:
        return []
    lines = [
        "",
        "## Scale: CPU per answer with 1,000 nodes over the 2-node figure",
        "",
        "Per repetition, the dns-1000-nodes figure at max over the mean of dns-a and "
        "dns-ptr (the same questions with 2 nodes) of the same server; median (min–max).",
        "",
        "| server | 1,000 nodes ÷ 2 nodes |",
        "|---|---|",
    ]
    for server, values in ratios.items():
        median = statistics.median(values)
        lines.append(f"| {server} | {median:.2f}× ({min(values):.2f}–{max(values):.2f}) |")
    return lines


def write(
    out: Path,
    runs: list[Run],
    meta: dict[str, Any],
    errors: list[str],
    extras: list[Run] | None = None,
    amplified: list[Run] | None = None,
) -> list[Path]:
    """Write bench.md, bench.json and bench.png into out; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(runs)
    paths = [out / "bench.md", out / "bench.json", out / "bench.png"]
    text = markdown(rows, meta, errors)
    tail = scale_markdown(runs) + extras_markdown(extras or [])
    tail += amplification.markdown(amplified or [])
    paths[0].write_text(text + "\n".join(tail) + "\n")
    document = {
        "meta": meta,
        "errors": errors,
        "summary": rows,
        "scale": scale_ratios(runs),
        "runs": runs,
        "extras": extras,
        "amplification": amplified or [],
    }
    paths[1].write_text(json.dumps(document, indent=1) + "\n")
    chart(rows, paths[2])
    return paths
