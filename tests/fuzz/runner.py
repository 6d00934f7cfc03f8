"""The runner every fuzz target shares: atheris (libFuzzer for Python) over seeds from tests/data.

Theory of operation
-------------------
Each module ``tests/fuzz/fuzz_*.py`` is one coverage-guided target. It
imports the codecs it drives inside :func:`instrumented` (so atheris adds
coverage feedback to ``protocols/`` and nothing else), names its seeds, and
defines ``one_input(data: bytes)``, which feeds the bytes to a decoder or a
session and asserts the target's invariant: the input decodes or answers,
or it raises :class:`~protocols.errors.MalformedMessage`; a session's
``receive_data`` never raises; a fast path equals its general path; what
decodes encodes back to the same value. Anything else escaping
``one_input`` is a crash: libFuzzer stops, writes the input to
``<artifact_prefix>crash-<sha1>`` and exits non-zero.

Run one target (libFuzzer's flags pass through)::

    python -m tests.fuzz.fuzz_dns_message -max_total_time=60 [CORPUS_DIR]
    python -m tests.fuzz.fuzz_dns_message crash-0123abcd      # replay one input

The seeds (captures from ``tests/data`` and what each target builds from
them) are written into the corpus directory first: a temporary one when none
is given, else the given one, which then keeps what the run found (``make
fuzz`` keeps one per target under ``.fuzz/corpus``). Replaying files adds no
seeds.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import tempfile
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

import atheris

OneInput = Callable[[bytes], None]


def instrumented() -> AbstractContextManager[object]:
    """Import ``protocols`` modules inside this block to give atheris their coverage."""
    return atheris.instrument_imports(include=["protocols"])


def _write_seeds(corpus: Path, seeds: Iterable[bytes]) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (corpus / f"seed-{hashlib.sha256(seed).hexdigest()}").write_bytes(seed)


def main(one_input: OneInput, seeds: Iterable[bytes], argv: list[str] | None = None) -> None:
    """Fuzz ``one_input`` from ``seeds`` with libFuzzer's command line ``argv``.

    Raises:
        SystemExit: libFuzzer exits the process: 0 when the run ends cleanly
            (``-runs``, ``-max_total_time``), non-zero after a crash.
    """
    args = list(sys.argv if argv is None else argv)
    paths = [Path(arg) for arg in args[1:] if not arg.startswith("-")]
    with tempfile.TemporaryDirectory(prefix="cozen-fuzz-") as scratch:
        if not paths:
            paths = [Path(scratch)]
            args.append(scratch)
        if paths[0].is_dir() or not paths[0].exists():
            _write_seeds(paths[0], seeds)
        atheris.Setup(args, one_input)
        atheris.Fuzz()


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """Cut a stream target's input into (stream, segments).

    The first byte says how many cuts (0 to 7), the next two bytes per cut
    where (modulo the stream's length); the rest is the stream. Any input
    is valid, and a seed that starts with ``b"\\x00"`` is its stream unsplit.
    """
    count = data[0] % 8 if data else 0
    spec, stream = data[1 : 1 + 2 * count], data[1 + 2 * count :]
    cuts = sorted(
        {int.from_bytes(spec[i : i + 2]) % (len(stream) + 1) for i in range(0, len(spec), 2)}
    )
    edges = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(edges)]
