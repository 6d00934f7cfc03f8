"""CPU time of every decoder's worst inputs (issue 11: at most 2 ms each).

Run from the repository root:  python -m benchmarks.worst_inputs [--repeat N] [--json FILE]

The inputs are the ones the unit tests bound in lines of work
(``tests/protocols/{dns,netbios,smb,auth}/test_worst_inputs.py``, table
``WORST``); here each call runs ``--repeat`` times and its CPU time
(``time.process_time``) is reported as the median and the maximum, in
milliseconds, with a mark where the median exceeds the 2 ms target. Nothing
here fails on a figure: like every benchmark, it informs and never gates.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.helpers import WorstInput

FAMILIES = ("dns", "netbios", "smb", "auth")
TARGET_MS = 2.0


@dataclass(frozen=True, slots=True)
class Row:
    decoder: str
    input: str
    size: int
    outcome: str
    median_ms: float
    max_ms: float

    @property
    def over_target(self) -> bool:
        return self.median_ms > TARGET_MS


def cases() -> list[WorstInput]:
    """Every family's WORST table, in family order."""
    found: list[WorstInput] = []
    for family in FAMILIES:
        module = importlib.import_module(f"tests.protocols.{family}.test_worst_inputs")
        found.extend(module.WORST)
    return found


def _timed(case: WorstInput) -> tuple[float, str]:
    start = time.process_time()
    try:
        outcome = type(case.call()).__name__
    except Exception as exc:  # a ProtocolError is an outcome; anything else is reported too
        outcome = type(exc).__name__
    return (time.process_time() - start) * 1000, outcome


def measure(case: WorstInput, repeat: int) -> Row:
    """Run ``case`` ``repeat`` times and keep the median and maximum CPU time."""
    times, outcome = [], ""
    for _ in range(repeat):
        elapsed, outcome = _timed(case)
        times.append(elapsed)
    return Row(case.decoder, case.name, case.size, outcome, statistics.median(times), max(times))


def markdown(rows: list[Row]) -> str:
    lines = [
        f"| decoder | worst input | bytes | outcome | median ms | max ms | ≤ {TARGET_MS:g} ms |",
        "|---|---|---:|---|---:|---:|:---:|",
    ]
    for row in rows:
        mark = "no" if row.over_target else "yes"
        lines.append(
            f"| {row.decoder} | {row.input} | {row.size:,} | {row.outcome} "
            f"| {row.median_ms:.3f} | {row.max_ms:.3f} | {mark} |"
        )
    return "\n".join(lines)


def run(repeat: int) -> list[Row]:
    """Measure every worst input."""
    return [measure(case, repeat) for case in cases()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.worst_inputs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=21, help="runs per input (median of N)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = run(max(1, args.repeat))
    print(markdown(rows))
    over = [row for row in rows if row.over_target]
    print(f"\n{len(rows)} inputs, {len(over)} over {TARGET_MS:g} ms (median of {args.repeat})")
    if args.json is not None:
        document = {
            "target_ms": TARGET_MS,
            "repeat": args.repeat,
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
