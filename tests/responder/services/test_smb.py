"""SmbService in-process on real loopback sockets, on both event loops."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid

import pytest

from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from protocols.smb import negotiate as neg
from responder.config import Config, parse_config
from responder.services import smb as smb_service
from responder.services.smb import SmbService
from tests.helpers import golden, run_on

NODES = {"SVC-CZ1": "127.0.0.61", "SVC-CZ2": "127.0.0.62"}
NEGOTIATE = golden("smb_smbclient_smb2_negotiate_req")


def make_config(nodes: dict[str, str] = NODES, **smb: object) -> Config:
    document = {
        "cluster": {"name": "SVC", "dns_domain": "corp.example", "workgroup": "CORP"},
        "dns": {"listen": ["127.0.0.60"]},
        "smb": smb,
        "node": [{"cozen_name": n, "management_ip": a} for n, a in nodes.items()],
    }
    return parse_config(document, "test")


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await asyncio.wait_for(reader.readexactly(4), 5)
    return header + await asyncio.wait_for(reader.readexactly(int.from_bytes(header[1:], "big")), 5)


async def negotiate(host: str) -> neg.NegotiateResponse:
    reader, writer = await asyncio.open_connection(host, 445)
    try:
        writer.write(NEGOTIATE)
        return neg.decode_negotiate_response((await read_frame(reader))[4:])
    finally:
        writer.close()


async def session_request(host: str, called: str) -> bytes:
    reader, writer = await asyncio.open_connection(host, 139)
    try:
        request = nbss.SessionRequest(NetbiosName(called, 0x20), NetbiosName("TESTER", 0))
        writer.write(nbss.encode_session_request(request))
        answer = await read_frame(reader)
        if answer[0] == nbss.FrameType.POSITIVE_RESPONSE:
            writer.write(NEGOTIATE)
            reply = neg.decode_negotiate_response((await read_frame(reader))[4:])
            assert reply.dialect_revision == neg.Dialect.SMB311
        return answer
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(100), 5) == b""


def test_two_nodes_negotiate_and_netbios_session(loop_kind):
    config = make_config()

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        await service.apply(config, 1)
        try:
            first = await negotiate("127.0.0.61")
            second = await negotiate("127.0.0.62")
            assert first.server_guid == config.nodes[0].server_guid.bytes_le
            assert second.server_guid == config.nodes[1].server_guid.bytes_le
            assert first.server_guid != second.server_guid
            assert first.server_start_time == second.server_start_time == 0  # as Windows 10/2016+
            assert await session_request("127.0.0.61", "svc-cz1") == b"\x82\x00\x00\x00"
            assert await session_request("127.0.0.61", "SVC") == b"\x83\x00\x00\x01\x82"
            assert await session_request("127.0.0.62", "SVC-CZ1") == b"\x83\x00\x00\x01\x82"
            status = service.status()
            assert status["nodes"] == {
                "127.0.0.61": {"cozen_name": "SVC-CZ1", "server_guid": str(first_guid(config))},
                "127.0.0.62": {
                    "cozen_name": "SVC-CZ2",
                    "server_guid": str(config.nodes[1].server_guid),
                },
            }
            assert len(status["listeners"]) == 4  # type: ignore[arg-type]
        finally:
            await service.stop()

    run_on(loop_kind, scenario)


def first_guid(config: Config) -> uuid.UUID:
    return config.nodes[0].server_guid


def test_idle_and_half_sent_flood_does_not_lock_out(loop_kind):
    config = make_config(max_connections=4, idle_timeout=30)

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        await service.apply(config, 1)
        flood = []
        try:
            for index in range(12):
                reader, writer = await asyncio.open_connection("127.0.0.61", 445)
                if index % 2:
                    writer.write(NEGOTIATE[:20])  # a frame that never completes
                flood.append((reader, writer))
            await asyncio.sleep(0.05)
            answer = await negotiate("127.0.0.61")
            assert answer.server_guid == first_guid(config).bytes_le
            listener = service.tcp.active[("127.0.0.61", 445, False)]
            assert listener.evicted >= 8
            assert len(listener.connections) <= 4
        finally:
            for _, writer in flood:
                writer.close()
            await service.stop()

    run_on(loop_kind, scenario)


def test_idle_connection_is_closed_after_timeout(loop_kind):
    config = make_config(idle_timeout=1)

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        await service.apply(config, 1)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.62", 139)
            assert await closed_by_server(reader)
            writer.close()
        finally:
            await service.stop()

    run_on(loop_kind, scenario)


@pytest.mark.parametrize(
    ("port", "payload"),
    [
        (445, b"\x00\x00\x00\x08garbage!"),
        (445, b"\x00\xff\xff\xff"),  # frame larger than max_message_size
        (445, b"\x00\x00\x00\x40\xfeSMB" + bytes(60)),
        (139, b"\x81\x00\x00\x02\x20\x00"),
        (139, b"\x85\x00\x00\x00" + NEGOTIATE),
    ],
)
def test_malformed_input_closes_without_crashing(loop_kind, port, payload):
    config = make_config()

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        await service.apply(config, 1)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.61", port)
            writer.write(payload)
            data = await asyncio.wait_for(reader.read(1000), 5)
            assert len(data) < 1000
            assert await closed_by_server(reader)
            writer.close()
            assert (await negotiate("127.0.0.61")).dialect_revision == neg.Dialect.SMB311
        finally:
            await service.stop()

    run_on(loop_kind, scenario)


def test_reload_swaps_identity_and_addresses(loop_kind):
    old = make_config()
    new = make_config({"SVC-CZ1": "127.0.0.61", "SVC-CZ3": "127.0.0.63"}, os_version="6.3.9600")

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        await service.apply(old, 1)
        try:
            await service.apply(new, 2)
            assert await session_request("127.0.0.63", "SVC-CZ3") == b"\x82\x00\x00\x00"
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.62", 445)
            assert service.identities["127.0.0.61"].ntlm.version == (6, 3, 9600)
            await service.apply(make_config(enabled=False), 3)
            assert service.tcp.active == {}
        finally:
            await service.stop()

    run_on(loop_kind, scenario)


def test_reload_applies_ip_ttl_to_open_listeners(loop_kind):
    def with_ttl(ttl: int) -> Config:
        document = {
            "cluster": {"name": "SVC", "dns_domain": "corp.example", "workgroup": "CORP"},
            "dns": {"listen": ["127.0.0.60"]},
            "daemon": {"ip_ttl": ttl},
            "node": [{"cozen_name": n, "management_ip": a} for n, a in NODES.items()],
        }
        return parse_config(document, "test")

    def ttls(service: SmbService) -> set[int]:
        return {
            listener.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
            for listener in service.tcp.active.values()
        }

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        await service.apply(with_ttl(128), 1)
        try:
            assert ttls(service) == {128}
            await service.apply(with_ttl(64), 2)
            assert ttls(service) == {64}
        finally:
            await service.stop()

    run_on(loop_kind, scenario)


def test_identities_are_derived_off_the_event_loop(loop_kind, monkeypatch):
    """Deriving 1,000 nodes' SMB identities on the loop would hold every answer back."""
    derived_on: list[threading.Thread] = []
    derive = smb_service.smb_identity

    def recording(config: Config, node: object) -> object:
        derived_on.append(threading.current_thread())
        return derive(config, node)  # type: ignore[arg-type]

    monkeypatch.setattr(smb_service, "smb_identity", recording)

    async def scenario() -> None:
        service = SmbService(asyncio.get_running_loop())
        try:
            await service.apply(make_config(), 1)
            assert await session_request("127.0.0.61", "SVC-CZ1") == b"\x82\x00\x00\x00"
        finally:
            await service.stop()

    derived_on.clear()
    run_on(loop_kind, scenario)
    assert len(derived_on) == len(NODES)
    assert threading.main_thread() not in derived_on
