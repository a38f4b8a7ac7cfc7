"""Who may publish and who may play, by client IP address (CIDR allow and deny lists).

Publishing and playing have their own lists. For each, an address on the deny list is refused;
otherwise, if the allow list is empty everyone may, else only addresses on it. Entries are IPv4
or IPv6 networks in CIDR notation (``"10.0.0.0/8"``, ``"2001:db8::/32"``) or single addresses
(``"192.0.2.7"``, which is ``/32``, or ``/128`` for IPv6)::

    [[apps.live.plugins]]
    use = "ipfilter"
    publish_allow = ["127.0.0.0/8", "10.0.0.0/8", "::1"]   # encoders on the LAN only
    publish_deny = ["10.9.0.0/16"]                          # ... except the guest network
    play_deny = ["192.0.2.0/24"]                            # everyone else may watch

A client of a server listening on ``::`` may come as an IPv4-mapped IPv6 address
(``::ffff:10.0.0.1``); it is checked as both, so IPv4 lists apply to it. An entry that is not
a network (a typo, a prefix longer than the address, host bits set as in ``10.0.0.1/8``) stops
the server at startup with the entry named. A client whose address cannot be read (not an IP
connection) is refused whenever a list applies to it. Put this plugin first in the chain, so
that refused addresses reach no other plugin.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def parse_networks(option: str, entries: object) -> tuple[Network, ...]:
    """The networks of one list option; ValueError naming ``option`` and the bad entry."""
    if entries is None:
        return ()
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise ValueError(f'{option}: expected a list of networks such as ["10.0.0.0/8"]')
    networks = []
    for entry in entries:
        # ip_network would take an int (as an address) or bytes: only text is a CIDR here.
        if not isinstance(entry, str):
            raise ValueError(f"{option}: {entry!r} is not a network in CIDR notation")
        try:
            networks.append(ip_network(entry.strip()))
        except ValueError as exc:
            raise ValueError(f"{option}: {exc}") from None  # the message names the entry
    return tuple(networks)


def client_addresses(host: str) -> tuple[Address, ...]:
    """The address(es) to check for ``host``: none if it is not an IP address; an IPv4-mapped
    IPv6 address is also checked as its IPv4 address."""
    try:
        address = ip_address(host.strip("[]"))
    except ValueError:
        return ()
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address, address.ipv4_mapped
    return (address,)


def _matches(addresses: Iterable[Address], networks: Iterable[Network]) -> bool:
    # An address is never "in" a network of the other IP version (no error either).
    return any(address in network for network in networks for address in addresses)


class IPFilter(Plugin):
    """Refuses publish and play from addresses that the lists exclude."""

    def __init__(
        self,
        *,
        publish_allow: list[str] | None = None,
        publish_deny: list[str] | None = None,
        play_allow: list[str] | None = None,
        play_deny: list[str] | None = None,
    ) -> None:
        self.publish_allow = parse_networks("publish_allow", publish_allow)
        self.publish_deny = parse_networks("publish_deny", publish_deny)
        self.play_allow = parse_networks("play_allow", play_allow)
        self.play_deny = parse_networks("play_deny", play_deny)

    def publish(
        self, client: IClientView, name: str, query: dict[str, str], kind: str
    ) -> Reject | None:
        return self._check(client.host, "publish", self.publish_allow, self.publish_deny)

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Reject | None:
        return self._check(client.host, "play", self.play_allow, self.play_deny)

    @staticmethod
    def _check(
        host: str, action: str, allow: tuple[Network, ...], deny: tuple[Network, ...]
    ) -> Reject | None:
        if not allow and not deny:
            return None
        addresses = client_addresses(host)
        if not addresses:
            return Reject(f"cannot {action}: the client address is unknown")
        if _matches(addresses, deny) or (allow and not _matches(addresses, allow)):
            return Reject(f"{host} may not {action} here")
        return None


__all__ = ["IPFilter", "client_addresses", "parse_networks"]
