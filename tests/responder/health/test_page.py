"""The status page at ``/``, loaded from a real daemon in headless Chromium."""

from __future__ import annotations

import http.client
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BASE_CONFIG

URL = "http://127.0.0.1:9137/"
CONFIG = BASE_CONFIG + '\n[health]\nlisten = "127.0.0.1:9137"\n'
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the suite runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium on the status page with a fresh profile; its stdout."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    result = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, URL],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def probed() -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", 9137, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def cells(dom: str, node: str) -> list[str]:
    row = re.search(rf'<tr data-node="{node}">(.*?)</tr>', dom, re.S)
    assert row is not None, f"no row for {node}"
    return [
        re.sub(r"<[^>]+>", " ", c).split()[0] for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1])
    ]


@pytest.mark.interop
def test_status_page_in_headless_chromium(write_config, start_daemon, tmp_path):
    start_daemon(write_config(CONFIG))
    deadline = time.monotonic() + 15
    while not probed():
        assert time.monotonic() < deadline, "daemon never ready"
        time.sleep(0.1)
    dom = chromium(tmp_path, "--dump-dom")
    assert '<meta http-equiv="refresh"' in dom
    assert re.search(r'<span id="ready" class="badge ok">ready</span>', dom)
    assert cells(dom, "SQL01-CZ1") == ["SQL01-CZ1", "127.0.0.11", "ok", "ok", "ok"]
    assert cells(dom, "SQL01-CZ2") == ["SQL01-CZ2", "127.0.0.12", "ok", "ok", "ok"]
    probes = re.search(r'<table id="probes">(.*?)</table>', dom, re.S)
    assert probes is not None and probes[1].count("<tr>") == 1 + 10  # head + 2 nodes x 5
    assert re.search(r"<td>\d+\.\d\d ms</td>", probes[1])
    names = re.search(r'<table id="names">(.*?)</table>', dom, re.S)
    assert names is not None and names[1].count("CORP&lt;00&gt;") == 2
    shot = tmp_path / "status-page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"status page screenshot: {shot}")
