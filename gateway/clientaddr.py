"""The client a per-address bound counts: its IPv4 address, or its IPv6 /64 network.

One IPv6 host is handed a whole /64 (2^64 addresses: SLAAC, privacy addresses, any address
its operator likes), so a bound keyed by the exact IPv6 address bounded nothing: each new
connection or request could come from a new one. The /64 is what one subscriber holds, as
IPv4's one address is. An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, a dual-stack
socket's view of an IPv4 client) counts as that IPv4 address.
"""

from __future__ import annotations

import ipaddress

#: Prefix length of an IPv6 client's network: one subscriber's (or one host's) share.
IPV6_PREFIX = 64


def client_key(ip: str) -> str:
    """``ip`` as a per-address bound counts it (anything unparsable: itself)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])  # a zone (fe80::1%eth0) aside
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)
