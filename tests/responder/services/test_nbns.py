"""The NBNS service in-process, on real loopback sockets, on both loops."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
import tomllib

import pytest

from protocols.netbios.names import WILDCARD, NetbiosName
from protocols.netbios.nbns import (
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NmFlags,
    NodeStatusRequest,
    NodeStatusResponse,
    Opcode,
    Rcode,
    RegistrationResponse,
    ReleaseResponse,
    WaitForAck,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_packet
from responder.config import Config, parse_config
from responder.net.listeners import BindError
from responder.services import nbns as nbns_service
from responder.services.nbns import NbnsService
from tests.helpers import BASE_CONFIG, run_on

CLIENT = "127.0.0.99"
CZ1 = NetbiosName("SQL01-CZ1")
CZ2 = NetbiosName("SQL01-CZ2")
FIRST_TRN_ID = 0x4000
QUIET = 0.3  # seconds of silence that count as "no answer" on loopback


def make_config(extra: str = "", base: str = BASE_CONFIG) -> Config:
    return parse_config(tomllib.loads(base + extra), "test")


class Client:
    """A UDP peer on CLIENT (port 0 unless told), polled without loop-specific APIs."""

    def __init__(self, port: int = 0, host: str = CLIENT) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setblocking(False)
        self.sock.bind((host, port))

    def send(self, message: object, to: str, port: int = 137) -> None:
        self.sock.sendto(encode_packet(message), (to, port))  # type: ignore[arg-type]

    async def receive(self, wait: float = 2.0) -> tuple[object, tuple[str, int]] | None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(2048)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            return decode_packet(data), source
        return None

    async def silent(self, wait: float = 0.3) -> bool:
        return await self.receive(wait) is None

    def close(self) -> None:
        self.sock.close()


def service(
    loop: asyncio.AbstractEventLoop, broadcasts: dict[str, str] | None = None
) -> NbnsService:
    mapping = {
        ipaddress.IPv4Address(k): ipaddress.IPv4Address(v) for k, v in (broadcasts or {}).items()
    }
    return NbnsService(loop, interfaces=lambda: mapping, trn_id=lambda: FIRST_TRN_ID)


async def query(client: Client, name: NetbiosName, to: str, wait: float = 2.0) -> object:
    client.send(NameQueryRequest(0x1234, name), to)
    got = await client.receive(wait)
    return None if got is None else got[0]


@pytest.mark.parametrize("fast_path", [True, False])
def test_query_and_status_answered_per_node(loop_kind, fast_path):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        await svc.apply(make_config(f"\n[netbios]\nfast_path = {str(fast_path).lower()}\n"), 1)
        client = Client()
        try:
            reply = await query(client, NetbiosName("sql01-cz1"), "127.0.0.11")
            assert isinstance(reply, NameQueryResponse)
            assert reply.trn_id == 0x1234 and reply.ttl == 300_000
            assert [e.address for e in reply.entries] == ["127.0.0.11"]
            reply = await query(client, NetbiosName("CORP", 0x1E), "127.0.0.12")
            assert isinstance(reply, NameQueryResponse)
            assert reply.entries[0].address == "127.0.0.12"
            assert reply.entries[0].flags & NbFlags.G
            # each address answers with that node's names only
            assert await query(client, CZ2, "127.0.0.11", QUIET) is None
            client.send(NodeStatusRequest(7, NetbiosName(WILDCARD)), "127.0.0.12")
            got = await client.receive()
            assert got is not None
            status, source = got
            assert source == ("127.0.0.12", 137)
            assert isinstance(status, NodeStatusResponse)
            assert [(n.name, n.suffix) for n in status.names] == [
                ("SQL01-CZ2", 0x00),
                ("SQL01-CZ2", 0x20),
                ("CORP", 0x00),
                ("CORP", 0x1E),
            ]
            assert status.unit_id == svc.view.by_address["127.0.0.12"].plan.identity.mac
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_public_name_and_unknown_names_are_silent(loop_kind):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        await svc.apply(make_config(), 1)
        client = Client()
        try:
            for name in (NetbiosName("SQL01"), NetbiosName("SQL01", 0x20), NetbiosName("OTHER")):
                assert await query(client, name, "127.0.0.11", QUIET) is None
            client.send(NodeStatusRequest(8, NetbiosName("SQL01")), "127.0.0.11")
            assert await client.silent()
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_no_smb_means_no_20_name(loop_kind):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        await svc.apply(make_config("\n[smb]\nenabled = false\n"), 1)
        client = Client()
        try:
            assert await query(client, NetbiosName("SQL01-CZ1", 0x20), "127.0.0.11", QUIET) is None
            assert isinstance(await query(client, CZ1, "127.0.0.11"), NameQueryResponse)
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_responses_are_not_answered_and_malformed_is_counted(loop_kind):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        await svc.apply(make_config(), 1)
        client = Client()
        try:
            response = NameQueryResponse(9, CZ1, NmFlags.AA, 0, 60, ())
            client.send(response, "127.0.0.11")
            client.sock.sendto(b"\x00\x01garbage", ("127.0.0.11", 137))
            client.sock.sendto(b"", ("127.0.0.11", 137))
            assert await client.silent()
            assert svc.malformed == 2
            assert isinstance(await query(client, CZ1, "127.0.0.11"), NameQueryResponse)
            assert svc.status()["malformed"] == 2
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_broadcast_socket_answers_from_the_management_address(loop_kind):
    # A loopback address stands in for the subnet broadcast address.
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop(), {"127.0.0.11": "127.0.0.255"})
        await svc.apply(make_config(), 1)
        client = Client()
        try:
            assert "127.0.0.255:137" in svc.bound()
            client.send(NameQueryRequest(5, CZ1, NmFlags.RD | NmFlags.B), "127.0.0.255")
            got = await client.receive()
            assert got is not None
            assert got[1] == ("127.0.0.11", 137)
            assert isinstance(got[0], NameQueryResponse)
            # node status is point to point; CZ2 has no broadcast address here
            client.send(NodeStatusRequest(6, CZ1, NmFlags.B), "127.0.0.255")
            client.send(NameQueryRequest(7, CZ2, NmFlags.RD | NmFlags.B), "127.0.0.255")
            assert await client.silent()
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_broadcast_to_several_nodes_is_decoded_once(loop_kind):
    # Both nodes share one subnet broadcast address: one datagram, one decode.
    async def scenario() -> None:
        svc = service(
            asyncio.get_running_loop(),
            {"127.0.0.11": "127.0.0.255", "127.0.0.12": "127.0.0.255"},
        )
        await svc.apply(make_config(), 1)
        client = Client()
        try:
            client.sock.sendto(b"\x00\x01garbage", ("127.0.0.255", 137))
            client.send(NameQueryRequest(8, CZ2, NmFlags.RD | NmFlags.B), "127.0.0.255")
            got = await client.receive()
            assert got is not None and got[1] == ("127.0.0.12", 137)
            assert svc.malformed == 1
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_foreign_registration_of_unique_name_is_refused(loop_kind):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop(), {"127.0.0.11": "127.0.0.255"})
        await svc.apply(make_config(), 1)
        client = Client()
        try:
            flags = NmFlags.RD | NmFlags.B
            steal = NameRegistrationRequest(
                0x77, Opcode.REGISTRATION, CZ1, flags, 300, NbFlags.ONT_B, CLIENT
            )
            client.send(steal, "127.0.0.255")
            got = await client.receive()
            assert got is not None
            refusal, source = got
            assert source == ("127.0.0.11", 137)
            assert isinstance(refusal, RegistrationResponse)
            assert refusal.rcode == Rcode.ACT_ERR and refusal.trn_id == 0x77
            group = NameRegistrationRequest(
                0x78, Opcode.REGISTRATION, NetbiosName("CORP"), flags, 300, NbFlags.G, CLIENT
            )
            client.send(group, "127.0.0.255")
            assert await client.silent()
            assert isinstance(await query(client, CZ1, "127.0.0.11"), NameQueryResponse)
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_objection_during_claim_puts_the_name_in_conflict(loop_kind, caplog):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop(), {"127.0.0.11": "127.0.0.255"})
        await svc.apply(make_config(), 1)
        objector = Client(137, "127.0.0.20")
        client = Client()
        try:
            # CZ1<00> is the first name of the table: it claims with FIRST_TRN_ID.
            objection = RegistrationResponse(
                FIRST_TRN_ID,
                Opcode.REGISTRATION,
                CZ1,
                NmFlags.AA | NmFlags.RD | NmFlags.RA,
                Rcode.ACT_ERR,
                0,
                NbFlags.ONT_B,
                "127.0.0.20",
            )
            objector.send(objection, "127.0.0.11")
            await asyncio.sleep(0.2)
            node = svc.status()["nodes"][0]  # type: ignore[index]
            assert node["conflicts"] == ["SQL01-CZ1<00>"]
            assert node["names"][0]["claim"] == "conflict"
            assert await query(client, CZ1, "127.0.0.11", QUIET) is None
            smb = await query(client, NetbiosName("SQL01-CZ1", 0x20), "127.0.0.11")
            assert isinstance(smb, NameQueryResponse)
        finally:
            objector.close()
            client.close()
            await svc.stop()

    with caplog.at_level(logging.WARNING, logger="responder.services.nbns"):
        run_on(loop_kind, scenario)
    assert "SQL01-CZ1<00> on 127.0.0.11 is in conflict: 127.0.0.20" in caplog.text


class FakeWins:
    """A WINS server on 127.0.0.53 that WACKs first, then grants ``ttl``."""

    def __init__(self, ttl: int) -> None:
        self.peer = Client(137, "127.0.0.53")
        self.ttl = ttl
        self.seen: list[object] = []

    async def serve(self, until: float) -> None:
        while time.monotonic() < until:
            got = await self.peer.receive(until - time.monotonic())
            if got is None:
                return
            message, source = got
            self.seen.append(message)
            self.answer(message, source)

    def answer(self, message: object, source: tuple[str, int]) -> None:
        reply: object
        if isinstance(message, NameRegistrationRequest):
            first = sum(1 for m in self.seen if m == message) == 1
            if first and message.opcode == Opcode.REGISTRATION:
                reply = WaitForAck(message.trn_id, message.name, NmFlags.AA, 1, 0x2910)
            else:
                reply = RegistrationResponse(
                    message.trn_id,
                    message.opcode,
                    message.name,
                    NmFlags.AA | NmFlags.RA,
                    0,
                    self.ttl,
                    message.flags,
                    message.address,
                )
        elif isinstance(message, NameReleaseRequest):
            reply = ReleaseResponse(
                message.trn_id, message.name, NmFlags.AA, 0, 0, message.flags, message.address
            )
        else:
            return
        self.peer.sock.sendto(encode_packet(reply), source)  # type: ignore[arg-type]


def test_wins_registration_wack_refresh_and_release(loop_kind):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        wins = FakeWins(ttl=2)
        config = make_config('\n[netbios]\nwins_server = "127.0.0.53"\n')
        await svc.apply(config, 1)
        try:
            await wins.serve(time.monotonic() + 2.5)
            states = {n["name"]: n["wins"] for n in svc.status()["nodes"][0]["names"]}  # type: ignore[index]
            assert set(states.values()) == {"registered"}
            opcodes = [m.opcode for m in wins.seen if isinstance(m, NameRegistrationRequest)]
            assert Opcode.REFRESH in opcodes  # half of the granted 2 s TTL
            hnode = next(m for m in wins.seen if isinstance(m, NameRegistrationRequest))
            assert hnode.flags & NbFlags.ONT_H == NbFlags.ONT_H
            client = Client()
            reply = await query(client, CZ1, "127.0.0.11")
            client.close()
            assert isinstance(reply, NameQueryResponse)
            assert reply.entries[0].flags & NbFlags.ONT_H == NbFlags.ONT_H
        finally:
            stopping = asyncio.ensure_future(svc.stop())
            await wins.serve(time.monotonic() + 1.0)
            await stopping
            wins.peer.close()
        released = {str(m.name) for m in wins.seen if isinstance(m, NameReleaseRequest)}
        assert {"SQL01-CZ1<00>", "SQL01-CZ2<20>", "CORP<1e>"} <= released

    run_on(loop_kind, scenario)


def test_reload_switches_nodes_and_failed_bind_changes_nothing(loop_kind):
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        await svc.apply(make_config(), 1)
        client = Client()
        third = '\n[[node]]\ncozen_name = "SQL01-CZ3"\nmanagement_ip = "127.0.0.13"\n'
        try:
            base = BASE_CONFIG.replace("SQL01-CZ2", "SQL01-CZ9")
            await svc.apply(make_config(third, base), 2)
            assert await query(client, NetbiosName("SQL01-CZ3"), "127.0.0.13") is not None
            assert await query(client, NetbiosName("SQL01-CZ9"), "127.0.0.12") is not None
            assert await query(client, CZ2, "127.0.0.12", QUIET) is None
            blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            blocker.bind(("127.0.0.14", 137))
            try:
                fourth = third.replace("CZ3", "CZ4").replace(".13", ".14")
                with pytest.raises(BindError):
                    await svc.apply(make_config(fourth), 3)
            finally:
                blocker.close()
            assert await query(client, NetbiosName("SQL01-CZ3"), "127.0.0.13") is not None
        finally:
            client.close()
            await svc.stop()
        assert svc.bound() == []

    run_on(loop_kind, scenario)


def test_node_answers_are_precomputed_off_the_event_loop(loop_kind, monkeypatch):
    """A node's answer tables take ~0.2 ms each: 1,000 of them on the loop would stall DNS."""
    built_on: list[threading.Thread] = []
    build = nbns_service.NodePlan.build

    def recording_build(plan: nbns_service.NodePlan, trn_id: object) -> object:
        built_on.append(threading.current_thread())
        return build(plan, trn_id)  # type: ignore[arg-type]

    monkeypatch.setattr(nbns_service.NodePlan, "build", recording_build)

    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        client = Client()
        try:
            await svc.apply(make_config(), 1)
            assert await query(client, CZ1, "127.0.0.11") is not None
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)
    assert len(built_on) == 2  # both nodes, neither on the loop's thread
    assert threading.main_thread() not in built_on
