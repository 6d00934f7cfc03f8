"""Shared fixtures for the SMB tests: an identity, golden captures, a loopback server."""

from __future__ import annotations

import socket
import threading

from protocols.auth.ntlmssp import NtlmIdentity
from protocols.smb.session import SmbIdentity, SmbSession, default_called_names

CLOCK = 1_700_000_000.0
SERVER_GUID = bytes(range(16))

IDENTITY = SmbIdentity(
    ntlm=NtlmIdentity(
        nb_computer_name="SQL01-CZ2",
        nb_domain_name="CORP",
        dns_computer_name="sql01-cz2.corp.example",
        dns_domain_name="corp.example",
        dns_tree_name="corp.example",
    ),
    server_guid=SERVER_GUID,
    workgroup="CORP",
    cozen_name="SQL01-CZ2",
    accepted_called_names=default_called_names("SQL01-CZ2", "127.0.0.12"),
)


class CountingRandom:
    """Deterministic ``random_bytes``: 0x11, 0x12, ... per call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, size: int) -> bytes:
        self.calls += 1
        return bytes([0x10 + self.calls]) * size


def new_session(identity: SmbIdentity = IDENTITY, *, netbios: bool = False) -> SmbSession:
    return SmbSession(identity, netbios=netbios, random_bytes=CountingRandom(), clock=lambda: CLOCK)


def body(frame: bytes) -> bytes:
    """Strip the 4-byte NBSS/direct header of one frame."""
    assert int.from_bytes(frame[1:4], "big") == len(frame) - 4
    return frame[4:]


class LoopbackServer:
    """A thread accepting TCP connections on 127.0.0.1:0, one SmbSession each."""

    def __init__(self, *, netbios: bool = False) -> None:
        self.netbios = netbios
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in range(1):
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        session = SmbSession(
            IDENTITY, netbios=self.netbios, random_bytes=CountingRandom(), clock=lambda: CLOCK
        )
        for _ in range(1000):
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                reply = session.receive_data(data)
            except BaseException as exc:  # the test asserts none happened
                self.errors.append(exc)
                return
            conn.sendall(reply)
            if session.closed:
                return

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)
