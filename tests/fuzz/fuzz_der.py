"""Fuzz target: the bounded DER reader (X.690 §8.1, §8.19, §10.1) under SPNEGO.

Walks every element of the input as a tree: constructed elements are
entered (up to MAX_DEPTH), OBJECT IDENTIFIERs are decoded.

Invariant: the walk ends or raises MalformedMessage; every decoded OID
encodes back to its content octets; every element re-encoded with ``tlv``
is a DER element the reader reads back the same.
"""

from __future__ import annotations

import contextlib

from tests.fuzz import runner
from tests.helpers import goldens

with runner.instrumented():
    from protocols._wire import Reader
    from protocols.auth import _der
    from protocols.errors import MalformedMessage


def seeds() -> list[bytes]:
    return goldens("spnego_")


def walk(reader: _der.DerReader) -> None:
    while not reader.at_end():
        offset = reader.offset
        tag, content = reader.read_tlv()
        data = content.rest()
        again = _der.DerReader.over(_der.tlv(tag, data), "der").read_tlv()
        assert (again[0], again[1].rest()) == (tag, data), offset
        if tag == _der.TAG_OID:
            assert _der.encode_oid(_der.decode_oid(data)) == data
        elif tag & 0x20 and reader.depth < _der.MAX_DEPTH:
            walk(_der.DerReader(Reader(data, "der"), reader.depth + 1))


def one_input(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        walk(_der.DerReader.over(data, "der"))


if __name__ == "__main__":
    runner.main(one_input, seeds())
