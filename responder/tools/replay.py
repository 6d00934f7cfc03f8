"""``cozen-responder replay``: re-answer the requests of captures and diff with their answers.

Theory of operation: a capture becomes exchanges
(:mod:`responder.tools.replay_capture`); each request of an exchange
addressed to a configured address is answered again, in process or by a
live server (:mod:`responder.tools.replay_answer`), and the answer compared
with the captured one (:mod:`responder.tools.replay_compare`). Every request
gets one verdict:

- ``matched``: the same answer (masked fields aside), or no answer in both;
- ``differing``: another answer, or an answer on one side only where the
  capture has one;
- ``unanswered``: the capture holds no answer, and the replay gives one;
- ``not-ours``: addressed to no configured address (or sent by a node).

On a TCP connection the requests are replayed in order on one session; the
server's SMB SessionId (UID for SMB1) is learnt from each pair of answers and
written into the client's later requests, as the client would have used the
replaying server's.

Exit statuses: 0 every request matched (or was not ours), 1 any other
verdict, 2 a capture that cannot be read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from protocols.capture.packets import Segment
from protocols.capture.pcapng import UnreadableCapture
from responder.config import Config
from responder.tools.replay_answer import Answers, StreamPeer
from responder.tools.replay_capture import Exchange, exchanges, read_capture
from responder.tools.replay_compare import diff, fields_of, mask_smb
from responder.tools.replay_label import label

VERDICTS = ("matched", "differing", "unanswered", "not-ours")
PROTOCOLS = ("dns", "nbns", "smb")


@dataclass(slots=True)
class Outcome:
    """The verdict on one request, and for a difference the differing fields."""

    protocol: str
    transport: str
    client: str
    server: str
    request: str
    verdict: str
    differences: list[str] = field(default_factory=list)


def load_segments(paths: list[str]) -> list[Segment]:
    """The segments of every capture, in order.

    Raises:
        OSError: a file cannot be read.
        UnreadableCapture: a file is neither pcap nor pcapng, or is cut short.
    """
    segments: list[Segment] = []
    for path in paths:
        try:
            segments += read_capture(path)
        except UnreadableCapture as exc:
            raise UnreadableCapture(path, exc.offset, exc.reason) from None
    return segments


def replay(segments: list[Segment], config: Config, answers: Answers) -> list[Outcome]:
    """One :class:`Outcome` per request the capture holds."""
    outcomes: list[Outcome] = []
    for exchange in exchanges(segments, config):
        if not exchange.ours:
            outcomes += [_outcome(exchange, r, "not-ours") for r in exchange.requests]
        elif exchange.transport == "udp":
            outcomes.append(_datagram(exchange, answers))
        else:
            outcomes += _stream(exchange, answers)
    return outcomes


def _outcome(
    exchange: Exchange, request: bytes, verdict: str, lines: list[str] | None = None
) -> Outcome:
    return Outcome(
        exchange.protocol,
        exchange.transport,
        f"{exchange.client[0]}:{exchange.client[1]}",
        f"{exchange.server[0]}:{exchange.server[1]}",
        label(exchange.protocol, request),
        verdict,
        lines or [],
    )


def _judge(protocol: str, captured: list[bytes], replayed: list[bytes]) -> tuple[str, list[str]]:
    if not captured:
        return (
            ("unanswered", ["capture: no answer; replay answers"]) if replayed else ("matched", [])
        )
    if not replayed:
        return "differing", ["replay: no answer where the capture has one"]
    if len(captured) != len(replayed):
        return "differing", [f"answers: {len(captured)} → {len(replayed)}"]
    fields = fields_of(protocol)
    lines: list[str] = []
    for before, after in zip(captured, replayed, strict=True):
        if protocol == "smb" and mask_smb(before) == mask_smb(after):
            continue
        lines += [
            line
            for line in diff(fields(before), fields(after))
            if protocol != "smb" or not line.startswith("masked")
        ]
        if protocol == "smb" and not lines:
            lines.append(_first_difference(mask_smb(before), mask_smb(after)))
    return ("differing", lines) if lines else ("matched", [])


def _first_difference(before: bytes, after: bytes) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
        min(len(before), len(after)),
    )
    return (
        f"byte {at}: {before[at : at + 8].hex() or '(end)'} → {after[at : at + 8].hex() or '(end)'}"
    )


def _datagram(exchange: Exchange, answers: Answers) -> Outcome:
    request = exchange.requests[0]
    answer = answers.datagram(exchange, request)
    verdict, lines = _judge(exchange.protocol, exchange.answers, [] if answer is None else [answer])
    return _outcome(exchange, request, verdict, lines)


def _stream(exchange: Exchange, answers: Answers) -> list[Outcome]:
    peer = answers.connect(exchange)
    captured = list(exchange.answers)
    ids: dict[bytes, bytes] = {}
    try:
        return [_stream_request(exchange, peer, r, captured, ids) for r in exchange.requests]
    finally:
        if peer is not None:
            peer.close()


def _stream_request(
    exchange: Exchange,
    peer: StreamPeer | None,
    request: bytes,
    captured: list[bytes],
    ids: dict[bytes, bytes],
) -> Outcome:
    if exchange.protocol == "dns":
        mine = [a for a in captured if a[:2] == request[:2]][:1]
        for answer in mine:
            captured.remove(answer)
    else:
        mine = captured[: _expected(request, captured)]
        del captured[: len(mine)]
    sent = _substitute(request, ids) if exchange.protocol == "smb" else request
    replayed = [] if peer is None else peer.exchange(sent, len(mine))
    if exchange.protocol == "smb":
        _learn(mine, replayed, ids)
    verdict, lines = _judge(exchange.protocol, mine, replayed)
    return _outcome(exchange, request, verdict, lines)


def _expected(request: bytes, captured: list[bytes]) -> int:
    # One answer per request frame, except none for a keep-alive (type 0x85).
    return 0 if request[:1] == b"\x85" else min(1, len(captured))


def _id_field(frame: bytes) -> tuple[int, int] | None:
    if frame[4:8] == b"\xfeSMB" and len(frame) >= 4 + 48:
        return 4 + 40, 8
    if frame[4:8] == b"\xffSMB" and len(frame) >= 4 + 30:
        return 4 + 28, 2
    return None


def _learn(captured: list[bytes], replayed: list[bytes], ids: dict[bytes, bytes]) -> None:
    for before, after in zip(captured, replayed, strict=False):
        where = _id_field(before)
        if where is not None and _id_field(after) == where:
            at, size = where
            if any(before[at : at + size]):
                ids[before[at : at + size]] = after[at : at + size]


def _substitute(request: bytes, ids: dict[bytes, bytes]) -> bytes:
    where = _id_field(request)
    if where is None:
        return request
    at, size = where
    ours = ids.get(request[at : at + size])
    return request if ours is None else request[:at] + ours + request[at + size :]


def summary(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """Per protocol, the count of each verdict."""
    counts = Counter((o.protocol, o.verdict) for o in outcomes)
    return {p: {v: counts[(p, v)] for v in VERDICTS} for p in PROTOCOLS}


def exit_status(outcomes: list[Outcome]) -> int:
    """0 when every request matched or was not ours, else 1."""
    return 0 if all(o.verdict in ("matched", "not-ours") for o in outcomes) else 1


def to_table(outcomes: list[Outcome]) -> str:
    """The per-protocol table, then each difference with its fields side by side."""
    lines = [f"{'protocol':<9}" + "".join(f"{v:>12}" for v in VERDICTS)]
    for protocol, counts in summary(outcomes).items():
        lines.append(f"{protocol:<9}" + "".join(f"{counts[v]:>12}" for v in VERDICTS))
    for o in outcomes:
        if o.verdict in ("differing", "unanswered"):
            lines.append("")
            lines.append(
                f"{o.verdict}: {o.protocol}/{o.transport} {o.client} → {o.server}  {o.request}"
            )
            lines += [f"    {line}" for line in o.differences]
    return "\n".join(lines)


def to_json(outcomes: list[Outcome]) -> str:
    """``{"summary": per protocol and verdict, "differences": [outcome, ...]}``."""
    problems = [asdict(o) for o in outcomes if o.verdict in ("differing", "unanswered")]
    return json.dumps(
        {"summary": summary(outcomes), "differences": problems}, indent=2, ensure_ascii=False
    )
