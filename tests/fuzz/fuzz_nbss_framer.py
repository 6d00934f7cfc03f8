"""Fuzz target: NBSS and direct TCP framing (RFC 1002 §4.3, MS-SMB2 §2.1) and SESSION REQUEST.

Invariant: ``Framer.next_frame`` gives frames or raises MalformedMessage;
the frames, and the offset of a framing error, do not depend on how the
stream was segmented; every frame encodes back to the bytes it came from;
a SESSION REQUEST payload decodes or raises MalformedMessage.
"""

from __future__ import annotations

import contextlib

from tests.fuzz import runner
from tests.helpers import golden

with runner.instrumented():
    from protocols.errors import MalformedMessage
    from protocols.netbios import nbss


def seeds() -> list[bytes]:
    request = golden("smb_smbclient_nbss_session_request")
    negotiate = golden("smb_smbclient_smb2_negotiate_req")
    stream = request + nbss.encode_keep_alive() + negotiate
    return [b"\x00" + stream, b"\x02\x00\x05\x00\x40" + stream, b"\x81\x00\x03" + negotiate]


def frames(segments: list[bytes], direct: bool) -> tuple[list[nbss.Frame], int | None]:
    framer, got = nbss.Framer(direct=direct, max_message_size=4096), []
    try:
        for segment in segments:
            framer.feed(segment)
            while (frame := framer.next_frame()) is not None:
                got.append(frame)
    except MalformedMessage as exc:
        return got, exc.offset
    return got, None


def one_input(data: bytes) -> None:
    direct = bool(data[:1]) and data[0] & 0x80 != 0
    whole, segments = runner.split(data)
    got, error = frames(segments, direct)
    assert (got, error) == frames([whole], direct)
    encoded = b"".join(nbss.encode_frame(f.type, f.payload, direct=direct) for f in got)
    assert whole.startswith(encoded)
    for frame in got:
        if frame.type is nbss.FrameType.SESSION_REQUEST:
            with contextlib.suppress(MalformedMessage):
                nbss.decode_session_request(frame.payload)


if __name__ == "__main__":
    runner.main(one_input, seeds())
