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


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(ip: str) -> Address | None:
    """``ip`` parsed, a zone (``fe80::1%eth0``) aside and an IPv4-mapped IPv6 address as
    its IPv4 address; None if it is no address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(ip: str) -> str:
    """``ip`` as a per-address bound counts it (anything unparsable: itself)."""
    address = _address(ip)
    if address is None:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def parse_proxies(values: list[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (addresses or networks, each may list several, comma- or
    space-separated) as networks; ValueError naming one that is neither."""
    networks = []
    for value in values:
        for item in value.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"--trusted-proxy {item!r}: give an IP address or a network "
                                 "such as 10.0.0.0/8") from None
    return tuple(networks)


def _trusted(ip: str, proxies: tuple[Network, ...]) -> bool:
    address = _address(ip)
    return address is not None and any(address in network for network in proxies)


def client_ip(peer: str, forwarded_for: list[str], proxies: tuple[Network, ...]) -> str:
    """The client's address of a request that came from ``peer`` with these
    ``X-Forwarded-For`` header values: ``peer`` itself, unless it is a trusted proxy; then
    the address the last untrusted hop gave (each proxy appends the address it heard from;
    what a client wrote itself comes first and is never believed past an untrusted hop).
    A header that names no valid address leaves the proxy's own address."""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        if _address(hop) is None:
            break  # no address: what comes before it is no proxy's word either
        client = hop
        if not _trusted(hop, proxies):
            break
    return client
