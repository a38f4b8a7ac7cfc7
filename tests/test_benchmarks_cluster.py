"""The pure parts of the cluster benchmark (``benchmarks.cluster``): the configurations it
gives its nodes, how it splits players over load generators, and its table. The benchmark
itself runs processes and is never part of the test suite's run."""

from __future__ import annotations

import pytest

from benchmarks.cluster import (
    TABLE_HEADER,
    ClusterResult,
    NodeAddress,
    format_row,
    format_table,
    generator_shares,
    node_config,
)
from benchmarks.fanout import Result
from fms.config import parse_config

ORIGIN = NodeAddress("origin", "127.0.0.1", 1935, 8081)
EDGE = NodeAddress("edge1", "127.0.0.2", 1936, 8082)


def test_a_static_edge_pulls_the_app_on_demand_from_the_origin() -> None:
    config = parse_config(node_config(EDGE, ORIGIN, "static", 9000))
    (pull,) = config.app("live").pull
    assert (pull.url, pull.mode, pull.match) == ("rtmp://127.0.0.1:1935/live", "on-demand", "*")
    assert not config.cluster.enabled


def test_the_static_origin_pulls_nothing() -> None:
    config = parse_config(node_config(ORIGIN, ORIGIN, "static", 500))
    assert config.app("live").pull == () and not config.cluster.enabled


@pytest.mark.parametrize("node", [ORIGIN, EDGE])
def test_in_cluster_mode_every_node_joins_the_directory_with_its_own_url(
    node: NodeAddress,
) -> None:
    text = node_config(node, ORIGIN, "cluster", 10, redis_url="redis://127.0.0.1:6390", secret="s")
    config = parse_config(text)
    assert config.cluster.redis == "redis://127.0.0.1:6390" and config.cluster.secret == "s"
    assert config.cluster.node_url == f"rtmp://{node.host}:{node.port}"
    assert config.app("live").pull == ()


def test_a_node_admits_its_players_from_one_address_and_serves_its_api() -> None:
    """All the load comes from 127.0.0.1: the caps are lifted above the node's player count."""
    config = parse_config(node_config(EDGE, ORIGIN, "static", 19_000))
    assert config.limits.max_connections >= 19_000
    assert config.limits.max_connecting_per_ip >= 19_000
    assert config.http.enabled and config.http.port == EDGE.http_port


def test_an_unknown_link_is_refused() -> None:
    with pytest.raises(ValueError, match="link"):
        node_config(EDGE, ORIGIN, "gossip", 10)


@pytest.mark.parametrize(
    ("players", "shares"),
    [(0, []), (1, [1]), (5000, [5000]), (5001, [2501, 2500]), (9000, [4500, 4500])],
)
def test_players_are_split_evenly_over_the_fewest_generators(
    players: int, shares: list[int]
) -> None:
    assert generator_shares(players) == shares


def _group(players: int, p50: float, p99: float, expected: int, delivered: int) -> Result:
    group = Result("g", "", players, 10.0, 73.0)
    group.latency_p50_ms, group.latency_p99_ms = p50, p99
    group.expected_per_player, group.delivered = expected, delivered
    return group


def test_the_row_gives_the_hop_as_edge_minus_direct_and_the_origin_cost_per_edge() -> None:
    result = ClusterResult("static", "550k", 1000, 500, 10.0, 73.0, load_before=1.5)
    result.origin_cpu_by_edges = [0.02, 0.03, 0.06]
    result.origin_cpu, result.origin_players = 0.25, 502
    result.edge_cpu, result.edge_cpu_per_million = [0.4, 0.5], [5.0, 6.25]
    result.groups = {
        "direct": _group(500, 10.0, 40.0, 730, 500 * 730),
        "edges": _group(2000, 13.5, 52.5, 730, 2000 * 730 - 73),
    }
    assert result.hop_ms("p50") == pytest.approx(3.5) and result.hop_ms("p99") == 12.5
    assert result.origin_cpu_per_edge == pytest.approx(0.02)
    row = format_row(result)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == TABLE_HEADER.count("|") - 1
    assert cells[2:7] == ["2,000 + 500", "1.0000", "10.0 / 40.0", "13.5 / 52.5", "3.5 / 12.5"]
    assert cells[7:9] == ["2.0 / 3.0 / 6.0 %", "2.00 %"]
    assert cells[9:] == ["0.050 %", "5.00 / 6.25", "40 / 50 %", "1.50"]
    header, rule, line = format_table([result]).splitlines()
    assert line == row and rule.count("---") == len(cells) == header.count("|") - 1


def test_a_run_without_direct_players_has_no_hop_figure() -> None:
    result = ClusterResult("static", "550k", 10, 0, 3.0, 73.0)
    result.groups = {"edges": _group(20, 1.0, 2.0, 219, 20 * 219)}
    assert result.hop_ms("p50") is None
    assert "- / -" in format_row(result)
