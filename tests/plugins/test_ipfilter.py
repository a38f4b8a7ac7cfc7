"""The ipfilter plugin: CIDR allow and deny lists for publish and play (no server)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fms.plugins import ipfilter
from fms.plugins.ipfilter import IPFilter
from zope.interface.verify import verifyObject

from fms.apps.api import Reject
from fms.apps.interfaces import IApplication
from fms.apps.loader import build, build_all
from fms.config import PluginSpec, parse_config
from fms.errors import ConfigError
from fms.testing import FakeClient, run_hook


def may_publish(plugin: IPFilter, host: str) -> bool:
    decision = run_hook(plugin.publish, FakeClient(host=host), "cam", {}, "live")
    assert decision is None or isinstance(decision, Reject)
    return decision is None


def may_play(plugin: IPFilter, host: str) -> bool:
    decision = run_hook(plugin.play, FakeClient(host=host), "cam", {})
    assert decision is None or isinstance(decision, Reject)
    return decision is None


def test_without_lists_everyone_may_publish_and_play() -> None:
    plugin = IPFilter()
    assert may_publish(plugin, "203.0.113.9") and may_play(plugin, "2001:db8::9")


def test_an_ipv4_allow_list_admits_its_networks() -> None:
    plugin = IPFilter(publish_allow=["127.0.0.0/8", "10.0.0.0/8"])
    assert may_publish(plugin, "127.0.0.1")
    assert may_publish(plugin, "10.200.3.4")


def test_an_ipv4_allow_list_refuses_other_addresses() -> None:
    plugin = IPFilter(publish_allow=["127.0.0.0/8", "10.0.0.0/8"])
    assert not may_publish(plugin, "11.0.0.1")


def test_an_ipv6_allow_list_admits_its_networks_only() -> None:
    plugin = IPFilter(play_allow=["2001:db8::/32"])
    assert may_play(plugin, "2001:db8:1::5")
    assert not may_play(plugin, "2001:db9::5")


def test_a_deny_list_alone_refuses_its_networks_and_admits_the_rest() -> None:
    plugin = IPFilter(play_deny=["192.0.2.0/24", "2001:db8:bad::/48"])
    assert not may_play(plugin, "192.0.2.77")
    assert not may_play(plugin, "2001:db8:bad::1")
    assert may_play(plugin, "198.51.100.1")
    assert may_play(plugin, "2001:db8:900d::1")


def test_deny_wins_over_allow() -> None:
    plugin = IPFilter(publish_allow=["10.0.0.0/8"], publish_deny=["10.9.0.0/16"])
    assert not may_publish(plugin, "10.9.1.1")
    assert may_publish(plugin, "10.8.1.1")


def test_deny_wins_over_allow_for_ipv6() -> None:
    plugin = IPFilter(publish_allow=["::/0"], publish_deny=["::1"])
    assert not may_publish(plugin, "::1")
    assert may_publish(plugin, "2001:db8::1")


def test_a_single_address_is_a_one_address_network() -> None:
    plugin = IPFilter(publish_allow=["192.0.2.7", "2001:db8::7"])
    assert may_publish(plugin, "192.0.2.7") and may_publish(plugin, "2001:db8::7")
    assert not may_publish(plugin, "192.0.2.8")
    assert not may_publish(plugin, "2001:db8::8")


def test_ipv4_lists_do_not_admit_ipv6_clients() -> None:
    plugin = IPFilter(publish_allow=["0.0.0.0/0"])
    assert not may_publish(plugin, "::1")


def test_an_ipv4_mapped_client_is_checked_against_ipv4_lists() -> None:
    assert may_publish(IPFilter(publish_allow=["10.0.0.0/8"]), "::ffff:10.1.2.3")
    assert not may_publish(IPFilter(publish_deny=["10.0.0.0/8"]), "::ffff:10.1.2.3")


def test_an_ipv6_client_with_a_scope_is_matched() -> None:
    assert may_play(IPFilter(play_allow=["fe80::/10"]), "fe80::1%eth0")


def test_publish_lists_do_not_apply_to_play() -> None:
    plugin = IPFilter(publish_allow=["10.0.0.0/8"], publish_deny=["192.0.2.0/24"])
    assert may_play(plugin, "192.0.2.1") and may_play(plugin, "203.0.113.1")


def test_play_lists_do_not_apply_to_publish() -> None:
    plugin = IPFilter(play_allow=["10.0.0.0/8"], play_deny=["192.0.2.0/24"])
    assert may_publish(plugin, "192.0.2.1") and may_publish(plugin, "203.0.113.1")


def test_an_unreadable_address_is_refused_when_a_list_applies() -> None:
    assert not may_publish(IPFilter(publish_deny=["192.0.2.0/24"]), "?")


def test_an_unreadable_address_is_admitted_when_no_list_applies() -> None:
    assert may_publish(IPFilter(play_allow=["10.0.0.0/8"]), "?")


def test_the_refusal_names_the_action_and_the_client_address() -> None:
    plugin = IPFilter(publish_allow=["10.0.0.0/8"])
    decision = run_hook(plugin.publish, FakeClient(host="192.0.2.1"), "cam", {}, "live")
    assert decision == Reject("192.0.2.1 may not publish here")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["10.0.0.1/8"], r"play_deny: 10\.0\.0\.1/8 has host bits set"),
        (["10.0.0.0/33"], r"play_deny: '10\.0\.0\.0/33' does not appear to be"),
        (["2001:db8::/129"], r"play_deny: '2001:db8::/129' does not appear to be"),
        (["localhost"], r"play_deny: 'localhost' does not appear to be"),
        (["10.0.0.0/8", ""], r"play_deny: '' does not appear to be"),
        ([167772160], r"play_deny: 167772160 is not a network in CIDR notation"),
        ("10.0.0.0/8", r"play_deny: expected a list of networks"),
    ],
)
def test_invalid_networks_are_startup_errors(entries: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IPFilter(play_deny=entries)


def test_it_provides_iapplication() -> None:
    assert verifyObject(IApplication, IPFilter(publish_allow=["127.0.0.0/8"]))


def test_it_loads_through_the_entry_point() -> None:
    plugin = build(PluginSpec("ipfilter", {"publish_allow": ["127.0.0.0/8", "::1"]}))
    assert isinstance(plugin, IPFilter)
    assert may_publish(plugin, "127.0.0.1") and not may_publish(plugin, "10.0.0.1")


def test_the_loader_reports_an_invalid_network_as_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"ipfilter.*publish_deny: 'nonsense' does not appear"):
        build(PluginSpec("ipfilter", {"publish_deny": ["nonsense"]}))


def test_the_documented_configuration_loads() -> None:
    doc = ipfilter.__doc__ or ""
    (block,) = re.findall(r"^( +\[\[apps\..*?)(?:\n\n|\Z)", doc, flags=re.M | re.S)
    plugin = build_all(parse_config(block.replace("\n    ", "\n").strip()))["live"][0]
    assert isinstance(plugin, IPFilter)
    assert may_publish(plugin, "10.1.0.1") and not may_publish(plugin, "10.9.0.1")
    assert may_play(plugin, "203.0.113.1") and not may_play(plugin, "192.0.2.1")
