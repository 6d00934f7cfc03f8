"""The GSS-TSIG adapter's exchange: verified answers, and Windows' wrongly signed refusals.

A loopback TCP server stands in for Windows DNS: it answers an UPDATE
signed with a context's MIC, either correctly or signed "in the wrong
direction" (a MIC our context does not verify). The context is the
unit tests' stand-in (an HMAC as MIC); the real one is tests/interop.
"""

from __future__ import annotations

import asyncio
import struct

import dns.message
import dns.rcode
import dns.tsig
import pytest

from protocols.dns import gss_tsig
from protocols.dns.update_messages import Step, build_update, wanted
from responder.services._gss import Negotiator
from tests.helpers import loop_kinds, run_on
from tests.protocols.dns.test_gss_tsig import FORWARD, NAME, FakeContext, signer


def key(context: FakeContext) -> dns.tsig.Key:
    return dns.tsig.Key(NAME, context, gss_tsig.GSS_TSIG)


async def serve(
    rcode: int, context: FakeContext, answer_context: FakeContext
) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        request = dns.message.from_wire(await reader.readexactly(length), keyring=key(context))
        assert request.had_tsig  # the UPDATE went out signed with the context
        response = dns.message.make_response(request)
        response.set_rcode(rcode)
        response.use_tsig(key(answer_context))
        wire = response.to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def exchange(loop_kind: str, rcode: int, right: bool, allowed: bool) -> dns.message.Message:
    context = FakeContext()
    result: list[dns.message.Message] = []

    async def scenario() -> None:
        other = context if right else FakeContext(b"wrong direction")
        server, port = await serve(rcode, context, other)
        gss = signer()
        gss.established(key(context), 0.0)
        negotiator = Negotiator(gss, None, allowed, timeout=2.0)
        update = build_update(Step.ADD, wanted(FORWARD), None, None)
        async with server:
            result.append(await negotiator.send(update, ("127.0.0.1", port)))

    run_on(loop_kind, scenario)
    return result[0]


@pytest.mark.parametrize("loop_kind", loop_kinds())
def test_a_verified_answer(loop_kind):
    answer = exchange(loop_kind, dns.rcode.NOERROR, right=True, allowed=False)
    assert answer.rcode() == dns.rcode.NOERROR and answer.had_tsig


@pytest.mark.parametrize("loop_kind", loop_kinds())
def test_a_wrongly_signed_refusal_is_read_when_allowed(loop_kind):
    answer = exchange(loop_kind, dns.rcode.REFUSED, right=False, allowed=True)
    assert answer.rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("loop_kind", loop_kinds())
def test_a_wrongly_signed_refusal_is_not_trusted_by_default(loop_kind):
    with pytest.raises(dns.tsig.BadSignature):
        exchange(loop_kind, dns.rcode.REFUSED, right=False, allowed=False)


@pytest.mark.parametrize("loop_kind", loop_kinds())
def test_a_wrongly_signed_success_is_never_trusted(loop_kind):
    with pytest.raises(dns.tsig.BadSignature):
        exchange(loop_kind, dns.rcode.NOERROR, right=False, allowed=True)
