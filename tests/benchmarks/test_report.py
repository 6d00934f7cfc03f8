"""The report's figures computed from runs: the 1,000-node scale ratio."""

from __future__ import annotations

import pytest

from benchmarks.report import Run, scale_markdown, scale_ratios


def run(workload: str, server: str, rep: int, cpu: float | None, load: str = "max") -> Run:
    return {"workload": workload, "server": server, "rep": rep, "load": load,
            "cpu_us_per_answer": cpu}  # fmt: skip


def test_scale_ratio_is_per_repetition_over_the_2_node_mean() -> None:
    runs = [
        run("dns-a", "cozen", 0, 5.0),
        run("dns-ptr", "cozen", 0, 7.0),
        run("dns-1000-nodes", "cozen", 0, 6.6),
        # rep 1: a slower machine for every workload leaves the ratio alone
        run("dns-a", "cozen", 1, 10.0),
        run("dns-ptr", "cozen", 1, 14.0),
        run("dns-1000-nodes", "cozen", 1, 12.0),
        # other loads and other repetitions never mix in
        run("dns-1000-nodes", "cozen", 0, 99.0, load="10k"),
        run("dns-a", "cozen", 2, 1.0),
    ]
    ratios = scale_ratios(runs)
    assert ratios.keys() == {"cozen"}
    assert ratios["cozen"] == [pytest.approx(1.1), pytest.approx(1.0)]
    assert "| cozen | 1.05× (1.00–1.10) |" in scale_markdown(runs)


def test_scale_ratio_needs_both_bases_with_a_figure() -> None:
    runs = [
        run("dns-a", "knot", 0, 5.0),
        run("dns-1000-nodes", "knot", 0, 6.0),
        run("dns-a", "c-ref", 0, 0.0),  # too short a run for a CPU tick
        run("dns-ptr", "c-ref", 0, 5.0),
        run("dns-1000-nodes", "c-ref", 0, 6.0),
    ]
    assert scale_ratios(runs) == {}
    assert scale_markdown(runs) == []
