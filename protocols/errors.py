"""The one error family every codec raises.

A codec given hostile bytes raises a :class:`MalformedMessage` (or one of its
subclasses) and nothing else; any other exception escaping a codec is a bug.
Each error carries the protocol, the byte offset where decoding gave up, a short
reason, and ``answer_hint``: the code to answer with, in the protocol's own enum
(a DNS :class:`~protocols.dns.message.Rcode` such as FORMERR, an SMB
:class:`~protocols.smb.ntstatus.NtStatus`), or None: nothing can be answered,
so the adapter drops the datagram or closes the stream.
"""

from __future__ import annotations

from enum import IntEnum


class ProtocolError(Exception):
    """Root of every error a codec raises on purpose."""


class MalformedMessage(ProtocolError):
    """Bytes that do not form a valid message of ``protocol``."""

    def __init__(
        self,
        protocol: str,
        offset: int,
        reason: str,
        *,
        answer_hint: IntEnum | None = None,
    ) -> None:
        super().__init__(f"{protocol}: {reason} at offset {offset}")
        self.protocol = protocol
        self.offset = offset
        self.reason = reason
        self.answer_hint = answer_hint


class Truncated(MalformedMessage):
    """The message ends before a field it announces."""


class TrailingBytes(MalformedMessage):
    """Bytes remain after a region that must be consumed exactly."""


class PointerLoop(MalformedMessage):
    """A name compression pointer chain loops or runs too long."""


class Unsupported(MalformedMessage):
    """Well-formed but outside what we implement (an opcode, a version, a budget).

    A message over one of a codec's work budgets (more records, names,
    options or list entries than it decodes) is refused with this class too:
    callers answer it as any malformed message, so it needs no class of its own.
    """
