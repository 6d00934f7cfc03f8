"""The command line itself: --version, and help for every option."""

from __future__ import annotations

import argparse
import subprocess
import sys

from responder import __version__
from responder.cli import _parser
from tests.helpers import PATIENCE, REPO


def test_version():
    result = subprocess.run(
        [sys.executable, "-m", "responder", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=True,
    )
    assert result.stdout == f"cozen-responder {__version__}\n"


def test_every_option_of_every_command_has_help():
    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = [parser, *commands.choices.values()]
    for each in parsers:
        for action in each._actions:
            assert action.help, f"{each.prog} {action.option_strings or action.dest}: no help"
