"""SMB handshake driver: NEGOTIATE, then SESSION_SETUP up to the NTLM CHALLENGE.

Each handshake is one TCP connection (direct TCP transport, MS-SMB2 §2.1):
an SMB2 NEGOTIATE (MS-SMB2 §2.2.3) offering dialects 2.0.2 to 3.0.2, then a
SESSION_SETUP (§2.2.5) whose security buffer is a SPNEGO NegTokenInit
(RFC 4178 §4.2.1) carrying an NTLMSSP NEGOTIATE_MESSAGE (MS-NLMP §2.2.1.1).
A handshake succeeds when NEGOTIATE returns STATUS_SUCCESS and SESSION_SETUP
returns STATUS_MORE_PROCESSING_REQUIRED (the CHALLENGE leg).

Closed loop with `--concurrency` connections in flight, bounded by
`--duration` and `--count`.  Prints one JSON object in the loadgen's shape.

Usage: python smbload.py --address ADDR [--port 445] [--duration S] [--count N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

STATUS_SUCCESS = 0
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
NEGOTIATE, SESSION_SETUP = 0, 1
DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302)
NTLMSSP_FLAGS = 0xA0888205  # UNICODE, REQUEST_TARGET, NTLM, ALWAYS_SIGN, ESS, TARGET_INFO, 128, 56
SPNEGO_OID = bytes.fromhex("2b0601050502")
NTLMSSP_OID = bytes.fromhex("2b06010401823702020a")


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def smb2_header(command: int, message_id: int) -> bytes:
    return struct.pack(
        "<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, 0, command, 1, 0, 0, message_id, 0, 0, 0, bytes(16)
    )


def negotiate_request() -> bytes:
    body = struct.pack("<HHHHI16sQ", 36, len(DIALECTS), 1, 0, 0, os.urandom(16), 0)
    return smb2_header(NEGOTIATE, 0) + body + struct.pack(f"<{len(DIALECTS)}H", *DIALECTS)


def ntlm_negotiate() -> bytes:
    return b"NTLMSSP\x00" + struct.pack("<II", 1, NTLMSSP_FLAGS) + bytes(16)


def spnego_init(token: bytes) -> bytes:
    mech_types = der(0xA0, der(0x30, der(0x06, NTLMSSP_OID)))
    mech_token = der(0xA2, der(0x04, token))
    return der(0x60, der(0x06, SPNEGO_OID) + der(0xA0, der(0x30, mech_types + mech_token)))


def session_setup_request() -> bytes:
    blob = spnego_init(ntlm_negotiate())
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(blob), 0)
    return smb2_header(SESSION_SETUP, 1) + body + blob


def frame(message: bytes) -> bytes:
    return struct.pack(">I", len(message)) + message


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def exchange(sock: socket.socket, message: bytes) -> int:
    """Send one framed message and return the NTSTATUS of the reply."""
    sock.sendall(frame(message))
    length = struct.unpack(">I", recv_exact(sock, 4))[0] & 0xFFFFFF
    reply = recv_exact(sock, length)
    if length < 64 or reply[:4] != b"\xfeSMB":
        raise ConnectionError("not an SMB2 reply")
    return int(struct.unpack_from("<I", reply, 8)[0])


def handshake(address: tuple[str, int], setup: bytes) -> float | None:
    """One handshake; its latency in seconds, or None on failure."""
    start = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=2.0) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if exchange(sock, negotiate_request()) != STATUS_SUCCESS:
                return None
            if exchange(sock, setup) != STATUS_MORE_PROCESSING_REQUIRED:
                return None
    except OSError:
        return None
    return time.perf_counter() - start


def worker(address: tuple[str, int], deadline: float, budget: int) -> list[float | None]:
    setup = session_setup_request()
    results: list[float | None] = []
    while len(results) < budget and time.monotonic() < deadline:
        results.append(handshake(address, setup))
    return results


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(results: list[float | None], elapsed: float) -> dict[str, float | int]:
    ok = sorted(r * 1e6 for r in results if r is not None)
    return {
        "sent": len(results),
        "received": len(ok),
        "lost": len(results) - len(ok),
        "elapsed_s": elapsed,
        "offered_qps": len(results) / elapsed,
        "answered_qps": len(ok) / elapsed,
        "mean_us": sum(ok) / len(ok) if ok else 0.0,
        "p50_us": percentile(ok, 0.5),
        "p90_us": percentile(ok, 0.9),
        "p99_us": percentile(ok, 0.99),
        "p999_us": percentile(ok, 0.999),
        "max_us": ok[-1] if ok else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=445)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    address = (args.address, args.port)
    deadline = time.monotonic() + args.duration
    budget = max(1, args.count // args.concurrency)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        futures = [pool.submit(worker, address, deadline, budget) for _ in range(args.concurrency)]
        results = [r for f in futures for r in f.result()]
    print(json.dumps(summary(results, max(time.perf_counter() - start, 1e-9))))


if __name__ == "__main__":
    main()
