"""Sockets and listeners: everything between the kernel and a service's handler.

- ``udp``         UdpListener: a socket drained from a loop reader callback
- ``_udploop.c``  the same drain loop compiled, answering exact repeats without Python
- ``guard``       a service's reflection filter and rate limiter, for both drain loops
- ``tcp``         TcpListener: one sans-IO session per connection, with limits
- ``listeners``   open a listener (or a BindError), and keep a set in step with the config
- ``interfaces``  the host's subnet broadcast addresses (for NBNS B-node traffic)
- ``addresses``   which local addresses are present now, followed through rtnetlink
- ``freebind``    IP_FREEBIND: bind an address before it arrives (a VRRP standby)
- ``ttl``         IP_TTL / IPV6_UNICAST_HOPS: the TTL of what we send ([daemon] ip_ttl)
- ``linksend``    a UDP broadcast on the link layer, from an address already gone
- ``tap``         where listeners report every packet while ``run --pcap`` records

The rule of this package: it knows sockets and nothing of any protocol.
"""
