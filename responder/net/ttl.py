"""The IP TTL (hop limit) of what we send: ``IP_TTL`` (ip(7)), ``IPV6_UNICAST_HOPS`` (ipv6(7)).

A scanner's OS guess starts from the TTL of the answers: Windows sends 128,
Linux 64.  A node presented as a Windows server answers with 128 from every
socket it answers from (``[daemon] ip_ttl``).  A listening TCP socket passes
the option on to its accepted connections (the kernel copies it at accept),
and the SYN-ACK already carries it.
"""

from __future__ import annotations

import socket


def set_ip_ttl(sock: socket.socket, ttl: int) -> None:
    """Send from ``sock`` with TTL (IPv4) or unicast hop limit (IPv6) ``ttl``, 1-255.

    Raises:
        OSError: the kernel refused the value.
    """
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
