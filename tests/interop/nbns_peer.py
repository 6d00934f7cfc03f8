"""A tiny NBNS peer for the broadcast tests, run inside a test namespace.

``python -m tests.interop.nbns_peer register NAME TO ADDRESS``
    broadcasts one B-node registration of NAME<00> for ADDRESS to TO:137 and
    prints ``rcode=N from=IP`` for the first response (or ``silence``).
``python -m tests.interop.nbns_peer defend NAME ADDRESS SECONDS``
    owns NAME<00> on 0.0.0.0:137 for SECONDS: every registration of it for
    another address gets ACT_ERR back, as a real owner does. Prints ``ready``.
"""

from __future__ import annotations

import socket
import sys
import time

from protocols.errors import MalformedMessage
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameRegistrationRequest,
    NbFlags,
    NmFlags,
    Opcode,
    Rcode,
    RegistrationResponse,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_packet


def register(name: str, to: str, address: str) -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind((address, 0))
    sock.settimeout(2.0)
    request = NameRegistrationRequest(
        0x5151,
        Opcode.REGISTRATION,
        NetbiosName.make(name),
        NmFlags.RD | NmFlags.B,
        300,
        NbFlags.ONT_B,
        address,
    )
    sock.sendto(encode_packet(request), (to, 137))
    try:
        data, source = sock.recvfrom(2048)
    except TimeoutError:
        return "silence"
    message = decode_packet(data)
    rcode = getattr(message, "rcode", "?")
    return f"rcode={rcode} from={source[0]}:{source[1]} trn={message.trn_id:#06x}"


def defend(name: str, address: str, seconds: float) -> None:
    ours = NetbiosName.make(name).key()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind(("0.0.0.0", 137))
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(2048)
            message = decode_packet(data)
        except (TimeoutError, MalformedMessage):
            continue
        if (
            isinstance(message, NameRegistrationRequest)
            and message.name.key() == ours
            and message.address != address
        ):
            refusal = RegistrationResponse(
                message.trn_id,
                message.opcode,
                message.name,
                NmFlags.AA | NmFlags.RD | NmFlags.RA,
                Rcode.ACT_ERR,
                0,
                message.flags,
                address,
            )
            sock.sendto(encode_packet(refusal), source)
            print(f"refused {message.name} for {source[0]}", flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["register"] and len(argv) == 4:
        print(register(argv[1], argv[2], argv[3]), flush=True)
        return 0
    if argv[:1] == ["defend"] and len(argv) == 4:
        defend(argv[1], argv[2], float(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
