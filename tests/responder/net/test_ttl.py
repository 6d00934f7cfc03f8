"""[daemon] ip_ttl on the sockets we answer from: IP_TTL and IPV6_UNICAST_HOPS (ip(7), ipv6(7))."""

import socket

import pytest

from responder.net.linksend import udp_packet
from responder.net.tcp import bind_tcp
from responder.net.udp import bind_udp


def _ttl(sock):
    if sock.family == socket.AF_INET6:
        return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
    return sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)


@pytest.mark.parametrize("bind", [bind_udp, bind_tcp])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_bound_socket_carries_ttl(bind, host):
    with bind(host, 0, ip_ttl=128) as sock:
        assert _ttl(sock) == 128


def test_accepted_connection_inherits_listener_ttl():
    with bind_tcp("127.0.0.1", 0, ip_ttl=128) as listener:
        listener.setblocking(True)
        with socket.create_connection(listener.getsockname()):
            conn, _ = listener.accept()
            with conn:
                assert _ttl(conn) == 128


def test_without_ttl_the_kernel_default_stays():
    with open("/proc/sys/net/ipv4/ip_default_ttl") as sysctl:
        default = int(sysctl.read())
    with bind_udp("127.0.0.1", 0) as sock:
        assert _ttl(sock) == default


def test_link_layer_packet_ttl():
    assert udp_packet(("198.18.0.1", 137), ("198.18.0.255", 137), b"x", 128)[8] == 128
    assert udp_packet(("198.18.0.1", 137), ("198.18.0.255", 137), b"x")[8] == 128
