"""Binding an address the host does not hold (yet): ``IP_FREEBIND``, see ip(7) and ipv6(7).

A VRRP standby (keepalived) runs its sidecar before the virtual addresses
arrive. Without this option ``bind()`` fails with EADDRNOTAVAIL; with it the
kernel accepts the bind, and the socket receives as soon as the address is
added to an interface, with no rebind. ``IPV6_FREEBIND`` (Linux 4.15) is the
IPv6 twin; Python's socket module may lack the constant, whose value is 78.
"""

from __future__ import annotations

import socket

IP_FREEBIND: int = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND: int = getattr(socket, "IPV6_FREEBIND", 78)


def set_freebind(sock: socket.socket) -> None:
    """Let ``sock`` bind an address that is on no interface now.

    Raises:
        OSError: the kernel refused the option (too old for IPV6_FREEBIND).
    """
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
