"""Packet captures, sans-IO: pcapng written, pcap and pcapng read, TCP synthesized and reassembled.

- ``pcapng``   blocks written (draft-ietf-opsawg-pcapng §4), pcap and pcapng files read
- ``packets``  IPv4/IPv6 + UDP/TCP built with checksums; link layers peeled to IP
- ``tcp``      a connection's SYN..FIN conversation synthesized (RFC 793); streams reassembled
"""
