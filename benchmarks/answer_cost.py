"""Per-answer cost of ``DnsAnswers.answer_udp`` on each Python path (micro-benchmark).

``python -m benchmarks.answer_cost`` from the repository root prints the
fastest of 15 timeit repeats, in ns per call, for: a repeat of an answered query
(the Python recall, what the pure Python loop serves repeats from), a fresh
fast-path splice, and the general path (NXDOMAIN, REFUSED, FORMERR). Run it
before and after a change to the answer path to see what the change costs.

Wall-clock timings on a shared machine wander by tens of percent, so for a
before/after comparison count instructions instead:
``python -m benchmarks.answer_cost CASE N`` only calls CASE N times, and
``valgrind --tool=callgrind`` around it with N and 0 gives, as the difference
of its "Collected" totals over N, the instructions per call (see
``benchmarks/README.md``).
"""

from __future__ import annotations

import sys
import timeit

from responder.config import load_config
from responder.services.dns import DnsAnswers


def _query(name: str, qtype: int, qid: int = 0x1234) -> bytes:
    wire = b"".join(len(label).to_bytes(1) + label.encode() for label in name.split("."))
    return (
        qid.to_bytes(2)
        + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + wire
        + b"\x00"
        + (qtype.to_bytes(2) + b"\x00\x01")
    )


def main() -> None:
    config = load_config(None)
    answers = DnsAnswers.build(config, 1)
    host = f"{config.nodes[0].cozen_name.lower()}.{config.cluster.dns_domain}"
    hit = _query(host, 1)
    answers.answer_udp(hit)  # now remembered: the recall path
    nxdomain, refused = _query("nope." + host, 1), _query("example.org", 1)
    repeats = answers.table.repeats if answers.table is not None else {}
    cases = {
        "recall": lambda: answers.answer_udp(hit),
        "splice": lambda: repeats.clear() or answers.answer_udp(hit),
        "clear": lambda: repeats.clear(),
        "nxdomain": lambda: answers.answer_udp(nxdomain),
        "refused": lambda: answers.answer_udp(refused),
    }
    if len(sys.argv) == 3:
        call, number = cases[sys.argv[1]], int(sys.argv[2])
        for _ in range(number):
            call()
        return
    for label, call in cases.items():
        number = 20_000 if label in ("nxdomain", "refused") else 200_000
        runs = timeit.repeat(call, number=number, repeat=15)
        print(f"{label:18} {min(runs) / number * 1e9:8.1f} ns/call")


if __name__ == "__main__":
    main()
