"""benchmarks.worst_inputs end to end, one run per input: its structure, never its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.worst_inputs import TARGET_MS, cases
from tests.helpers import REPO


def test_one_run_measures_every_worst_input(tmp_path: Path) -> None:
    out = tmp_path / "worst.json"
    argv = [sys.executable, "-m", "benchmarks.worst_inputs", "--repeat", "1", "--json", str(out)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(out.read_text())
    assert (document["repeat"], document["target_ms"]) == (1, TARGET_MS)
    rows = document["rows"]
    assert [(r["decoder"], r["input"], r["size"]) for r in rows] == [
        (c.decoder, c.name, c.size) for c in cases()
    ]
    assert all(r["max_ms"] >= r["median_ms"] >= 0 and r["outcome"] for r in rows)
    table = done.stdout
    assert table.startswith("| decoder | worst input | bytes | outcome | median ms |")
    assert table.count("\n| ") == len(rows)  # one line per input below the header
    assert f"{len(rows)} inputs" in table
