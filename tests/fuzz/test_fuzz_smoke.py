"""Every fuzz target runs clean for a few seconds (the standing check of issue 11).

All targets start at once, each as its own process (atheris instruments
what it imports, and libFuzzer owns the process it runs in), for
``COZEN_FUZZ_SECONDS`` seconds each (default 4) from their seeds with a
fixed libFuzzer seed. A crash fails its target's test with libFuzzer's
report and leaves the input in the test's artifacts directory; ``make fuzz``
runs the same targets for longer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, end_process

HERE = Path(__file__).resolve().parent
TARGETS = sorted(path.stem for path in HERE.glob("fuzz_*.py"))
SECONDS = int(os.environ.get("COZEN_FUZZ_SECONDS", "4"))


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], Path]]]:
    started = {}
    for target in TARGETS:
        where = tmp_path_factory.mktemp(target)
        log = (where / "libfuzzer.log").open("wb")
        argv = [
            sys.executable,
            "-bb",  # a bytes/str comparison in a codec is a crash too
            "-m",
            f"tests.fuzz.{target}",
            f"-max_total_time={SECONDS}",
            "-seed=1",
            f"-artifact_prefix={where}/",
        ]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        started[target] = (proc, where / "libfuzzer.log")
        log.close()
    yield started
    for proc, _log in started.values():
        end_process(proc)


@pytest.mark.fuzz
@pytest.mark.timeout(SECONDS * 4 + 60)
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(target, runs):
    proc, log = runs[target]
    proc.wait(SECONDS * 4 + 50)
    report = log.read_text(errors="replace")
    assert proc.returncode == 0, report[-4000:]
    assert "Done " in report and " runs in " in report, report[-2000:]


def test_every_target_is_a_module_with_seeds_and_an_entry_point():
    assert len(TARGETS) >= 10
    for target in TARGETS:
        source = (HERE / f"{target}.py").read_text()
        assert "def seeds()" in source and "def one_input(" in source, target
        assert "runner.main(one_input, seeds())" in source, target
