"""Install what the suite needs when it is missing, and build the C programs.

Debian packages come through apt-get (checked with `command -v` first; the
package lists are refreshed only if an install fails), Python packages through
pip into the interpreter running the suite.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

APT_PACKAGES = {
    "gcc": "gcc",
    "taskset": "util-linux",
    "ip": "iproute2",
    "dnsperf": "dnsperf",
    "knotd": "knot",
    "dnsmasq": "dnsmasq-base",  # the binary only, no system service
    "nmbd": "samba",
    "smbd": "samba",
}
PIP_PACKAGES = {"dnslib": "dnslib", "matplotlib": "matplotlib"}
C_PROGRAMS = ("responder", "loadgen")


def ensure_commands(commands: Iterable[str]) -> None:
    """apt-get install the packages providing the commands not on PATH."""
    missing = sorted({APT_PACKAGES[c] for c in commands if shutil.which(c) is None})
    if not missing:
        return
    apt = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(apt, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(apt, check=True)


def ensure_modules(python: str, modules: Iterable[str]) -> None:
    """pip install the Python packages that `python` cannot import."""
    missing = [
        PIP_PACKAGES[m]
        for m in modules
        if subprocess.run([python, "-c", f"import {m}"], capture_output=True).returncode != 0
    ]
    if missing:
        subprocess.run([python, "-m", "pip", "install", "-q", *missing], check=True)


def build_c(source_dir: Path, build_dir: Path) -> None:
    """gcc -O2 each C program into build_dir when missing or older than its source."""
    build_dir.mkdir(parents=True, exist_ok=True)
    for name in C_PROGRAMS:
        source, binary = source_dir / f"{name}.c", build_dir / name
        if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
            continue
        cc = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(binary), str(source)]
        subprocess.run(cc, check=True)
