"""Address checks for outgoing requests: no webhook may reach an internal host.

A URL's host is resolved once, and every address it resolves to must be
public or admitted by the allowlist. Loopback, private, link-local, CGNAT,
multicast, unspecified and reserved addresses are blocked, also when an
IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address wraps them. The caller then
connects to one of the checked addresses, never to the name, so a second DNS
response cannot change the target.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "DISTILGATE_WEBHOOK_ALLOW_HOSTS"

# Ranges that ``is_global`` of Python 3.11 does not cover on its own.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


class BlockedAddressError(ValueError):
    """A host resolves to an address that outgoing requests may not reach."""

    def __init__(self, host: str, address: str, reason: str):
        super().__init__(
            f"host {host!r} resolves to {address} ({reason}); add the host or a "
            f"network containing it to {ALLOW_SETTING} to allow it"
        )
        self.host = host
        self.address = address


class UnresolvableHostError(ValueError):
    """A host name has no address."""


@dataclass(frozen=True)
class Allowlist:
    """Host names and networks that may be reached although they are internal."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Build an allowlist from names, addresses and CIDR networks.

        Raises:
            ValueError: an entry is empty or an invalid network.
        """
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                raise ValueError(f"empty entry {raw!r} in {ALLOW_SETTING}")
            network = _network(entry)
            if network is None:
                hosts.add(entry)
            else:
                networks.append(network)
        return cls(frozenset(hosts), tuple(networks))

    def admits_host(self, host: str) -> bool:
        return normalise_host(host) in self.hosts

    def admits_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def normalise_host(host: str) -> str:
    """Return ``host`` lower-cased, without brackets, zone id or trailing dot."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    return host.split("%", 1)[0].rstrip(".")


def literal_address(host: str) -> IPAddress | None:
    """Return the address a literal host stands for, in any spelling.

    Besides dotted quads and IPv6 this reads what ``inet_aton`` reads, as the
    system resolver does: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``.
    """
    host = normalise_host(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def blocked_reason(address: IPAddress) -> str | None:
    """Return why ``address`` is internal, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return None if inner is None else f"embeds {embedded}, {inner}"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local, as cloud metadata services are"),
        (address.is_multicast, "multicast"),
        (address in _CGNAT if address.version == 4 else False, "shared CGNAT"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for flagged, reason in checks if flagged), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Return every address of ``host``, in the resolver's order.

    Raises:
        UnresolvableHostError: the name has no address.
    """
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(normalise_host(host), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHostError(f"host {host!r} cannot be resolved: {exc}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_addresses(
    host: str, addresses: list[IPAddress], allowlist: Allowlist
) -> list[IPAddress]:
    """Return ``addresses`` when every one may be reached.

    Raises:
        BlockedAddressError: one address is internal and not allowlisted.
    """
    if allowlist.admits_host(host):
        return addresses
    for address in addresses:
        reason = blocked_reason(address)
        if reason is not None and not allowlist.admits_address(address):
            raise BlockedAddressError(host, str(address), reason)
    return addresses


def checked_addresses(host: str, port: int, allowlist: Allowlist) -> list[IPAddress]:
    """Resolve ``host`` once and return its addresses when all may be reached.

    Raises:
        UnresolvableHostError: the name has no address.
        BlockedAddressError: one address is internal and not allowlisted.
    """
    return check_addresses(host, resolve(host, port), allowlist)


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(normalise_host(entry), strict=False)
    except ValueError:
        if "/" in entry:
            raise ValueError(
                f"{entry!r} in {ALLOW_SETTING} is not a valid CIDR network"
            ) from None
    literal = literal_address(entry)
    return None if literal is None else ipaddress.ip_network(literal)
