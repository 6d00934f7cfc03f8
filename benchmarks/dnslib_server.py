"""dnslib's stock DNSServer (UDP) with a resolver serving the benchmark records.

Usage: python dnslib_server.py --address ADDR --port PORT RECORDS_JSON
RECORDS_JSON holds {"A": {name: ip}, "PTR": {reverse_name: target}}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import DNSLogger, DNSServer


class RecordResolver:
    """Answers A and PTR from two dictionaries; NXDOMAIN for anything else."""

    def __init__(self, a: dict[str, str], ptr: dict[str, str]) -> None:
        self.a = a
        self.ptr = {
            name: RR.fromZone(f"{name}. 300 IN PTR {target}.")[0] for name, target in ptr.items()
        }

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if request.q.qtype == QTYPE.A and name in self.a:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(self.a[name]), ttl=300))
        elif request.q.qtype == QTYPE.PTR and name in self.ptr:
            reply.add_answer(self.ptr[name])
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("records", type=Path)
    args = parser.parse_args()
    data = json.loads(args.records.read_text())
    resolver = RecordResolver(data["A"], data["PTR"])
    logger = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(resolver, port=args.port, address=args.address, logger=logger)
    server.start()


if __name__ == "__main__":
    main()
