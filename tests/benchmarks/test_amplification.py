"""The benchmark's amplification part against the real daemon: every factor at most 10x.

Uses the benchmark's own functions (its cluster, config writer, queries and
exchange) on the daemon started by the suite; no timing is asserted.
"""

from __future__ import annotations

import pytest

from benchmarks import amplification, records, servers

# dnslib (the benchmark's query builder) compares str with bytes, which -bb makes an error.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:dnslib.label")


def test_every_dns_and_nbns_message_amplifies_at_most_10x(write_config, start_daemon):
    cluster = records.make_cluster(2)
    start_daemon(write_config(servers.cozen_config(cluster, fast_path=True)))
    rows = amplification.measure(cluster, "dns", servers.udp_exchange)
    rows += amplification.measure(cluster, "nbns", servers.udp_exchange)
    labels = [(r["protocol"], r["message"]) for r in rows]
    dns = [f"{q}{e}" for e in ("", " +EDNS") for q in amplification.DNS_QUESTIONS]
    assert labels == [
        *(("DNS", m) for m in dns),
        ("DNS", "TC slip (rate-limited)"),
        ("NBNS", "name query"),
        ("NBNS", "node status"),
    ]
    assert amplification.too_large(rows) == []
    assert all(0 < r["factor"] <= amplification.MAX_FACTOR for r in rows)
    slip = rows[len(dns)]
    assert slip["bytes_out"] <= slip["bytes_in"]  # header and question only: never more
    table = "\n".join(amplification.markdown(rows))
    assert "| NBNS | node status |" in table


def test_too_large_names_the_offending_rows():
    rows = [
        amplification.row("DNS", "big", b"x", b"y" * 11),
        amplification.row("DNS", "ok", b"x", b"y" * 10),
        amplification.row("NBNS", "silent", b"x", None),
    ]
    assert amplification.too_large(rows) == ["DNS big: 11.00x", "NBNS silent: no answer"]
