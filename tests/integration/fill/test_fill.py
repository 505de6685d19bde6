"""The fill agent against real servers on loopback and a real store."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from fill.agent import Agent, CycleStatus
from fill.config import read_fill_config
from fill.fetcher import client_session
from fill.metrics import FillMetrics
from oca.store import Store
from tests.integration.fill.conftest import (
    File,
    item,
    make_files,
    manifest_doc,
    origin,
    peer,
    put_files,
    write_fill_config,
)


@pytest.fixture
async def appliance(tmp_path, manifest_server):
    """(make_agent, store): agents share one store and one session; everything closed at the end."""
    opened = []
    session = client_session()

    def make(cp_url=None, **kw):
        config = read_fill_config(write_fill_config(tmp_path, cp_url or manifest_server.url, **kw))
        store = Store.open(config.store, cleanup=True)
        metrics = FillMetrics(CollectorRegistry())
        agent = Agent(config, store, session, metrics, tty=False)
        opened.append(store)
        return agent

    yield make
    await session.close()
    for s in opened:
        s.close()


def value(agent: Agent, name: str, **labels) -> float:
    return agent.metrics.registry.get_sample_value(name, labels or None) or 0.0


def assert_holds_exactly(store: Store, files) -> None:
    entries = {e.key: e for e in store.entries()}
    assert sorted(entries) == sorted(f.key for f in files)
    for f in files:
        e = store.lookup(f.key)
        assert e is not None and (e.size, e.sha256) == (f.size, f.sha256)
        assert store.path_of(e).read_bytes() == f.data
    assert all(r.status == "ok" for r in store.verify())


async def test_fill_from_our_edge_as_origin(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(6, 300_000)
    put_files(tmp_path / "origin", files)
    edge = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(edge.url, f)], tier="ssd" if i < 2 else "hdd")
                                        for i, f in enumerate(files)])
    agent = appliance()
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE, result.summary.lines()
    assert_holds_exactly(agent.store, files)
    assert [agent.store.lookup(f.key).tier for f in files] == ["ssd", "ssd", "hdd", "hdd", "hdd", "hdd"]
    assert value(agent, "oca_fill_bytes_fetched_total", source_kind="origin") == sum(f.size for f in files)
    assert value(agent, "oca_fill_items_total", outcome="done") == 6
    assert (tmp_path / "fill.prom").read_text().count("oca_fill_items_total") >= 2

    # The same manifest again: a 304, and nothing to do.
    again = await agent.run_once()
    assert again.status is CycleStatus.COMPLETE and again.plan.empty
    assert manifest_server.not_modified == 1


async def test_peer_first_origin_when_the_peer_lacks_it(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(4, 200_000)
    put_files(tmp_path / "origin", files)
    put_files(tmp_path / "peer", files[:3])                      # the peer misses the last file
    org, pr = edge_factory(tmp_path / "origin"), edge_factory(tmp_path / "peer")
    manifest_server.doc = manifest_doc([item(i + 1, f, [peer(pr.url, f), origin(org.url, f)])
                                        for i, f in enumerate(files)])
    agent = appliance()
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE
    assert_holds_exactly(agent.store, files)
    assert value(agent, "oca_fill_bytes_fetched_total", source_kind="peer") == 3 * 200_000
    assert value(agent, "oca_fill_bytes_fetched_total", source_kind="origin") == 200_000
    assert value(agent, "oca_fill_source_failures_total", source_kind="peer", reason="status_404") == 1


async def test_misbehaving_sources_fall_through_and_never_publish_bad_bytes(tmp_path, edge_factory, bad_server,
                                                                            manifest_server, appliance):
    modes = ["404", "500", "corrupt", "truncate", "stall", "flaky", "longer", "norange", "cut", "wronglen"]
    files = make_files(len(modes), 150_000, seed=3)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    bad = await bad_server(files)
    manifest_server.doc = manifest_doc([
        item(i + 1, f, [{"kind": "peer", "url": f"{bad.url}/{mode}/{f.key}"}, origin(org.url, f)])
        for i, (mode, f) in enumerate(zip(modes, files, strict=True))])
    agent = appliance()
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE, result.summary.lines()
    assert_holds_exactly(agent.store, files)
    reasons = {labels["reason"]: v for labels, v in
               ((s.labels, s.value) for m in agent.metrics.registry.collect() for s in m.samples
                if s.name == "oca_fill_source_failures_total")}
    # 404: straight to the next source; 500: retried once (2 attempts), then the next source
    assert reasons["status_404"] == 1 and reasons["status_500"] == 2
    assert reasons["corrupt"] == 1 and reasons["too_long"] == 1 and reasons["size_mismatch"] == 1
    assert reasons["timeout"] >= 1                                # the stall, then resumed at the same source
    assert reasons["short_body"] >= 3                             # truncate (1) + cut (2)
    assert reasons["status_503"] == 2                             # flaky: two 503s use up its attempts
    # truncate and stall resumed where they stopped, from the same source
    assert bad.hits[("truncate", files[3].key)] == 2 and bad.hits[("stall", files[4].key)] == 2
    assert f"bytes={150_000 // 2}-" in bad.ranges


async def test_resume_a_partial_with_range_and_if_range(tmp_path, bad_server, manifest_server, appliance):
    files = make_files(2, 400_000, seed=5)
    bad = await bad_server(files)
    manifest_server.doc = manifest_doc([item(1, files[0], [{"kind": "origin", "url": f"{bad.url}/ok/{files[0].key}"}]),
                                        item(2, files[1], [{"kind": "origin",
                                                            "url": f"{bad.url}/newetag/{files[1].key}"}])])
    agent = appliance()
    # leave partials behind as a killed run would: 100 000 bytes each, with the validator each source gave
    for f, validator in ((files[0], '"v1"'), (files[1], '"v0"')):
        with agent.store.stage(f.key, size=f.size, sha256=f.sha256, tier="hdd") as st:
            st.write(f.data[:100_000])
            st.set_validator(validator)
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE
    assert_holds_exactly(agent.store, files)
    assert bad.ranges.count("bytes=100000-") == 2
    # ok: resumed (300 000 bytes); newetag: the source's file changed, If-Range gave a 200: from 0
    assert result.summary.received["origin"] == 300_000 + 400_000


async def test_partials_of_files_no_longer_wanted_are_dropped(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(3, 100_000, seed=8)
    put_files(tmp_path / "origin", files[:1])
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(1, files[0], [origin(org.url, files[0])])])
    agent = appliance()
    # a run killed last night left partials of two files: one fell out of the manifest since, the
    # other was republished (another SHA-256)
    with agent.store.stage(files[1].key, size=files[1].size, sha256=files[1].sha256, tier="hdd") as st:
        st.write(files[1].data[:50_000])
    with agent.store.stage(files[0].key, size=files[0].size, sha256=files[2].sha256, tier="hdd") as st:
        st.write(files[2].data[:40_000])
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE and result.summary.dropped_partials == 2
    assert agent.store.partials() == []
    assert_holds_exactly(agent.store, files[:1])


async def test_evictions_moves_and_licence_expiry(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(5, 100_000, seed=7)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    agent = appliance()
    assert (await agent.run_once()).status is CycleStatus.COMPLETE
    # next night: title t1's licence expired (dropped), t3 became hot (ssd), t0 stays
    keep = [files[0], files[2], files[3], files[4]]
    manifest_server.doc = manifest_doc([item(1, files[3], [origin(org.url, files[3])], tier="ssd")] +
                                       [item(i + 2, f, [origin(org.url, f)]) for i, f in
                                        enumerate([files[0], files[2], files[4]])], generation=2)
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE
    assert (result.summary.evicted, result.summary.moved, result.summary.fetched) == (1, 1, 0)
    assert_holds_exactly(agent.store, keep)
    assert agent.store.lookup(files[3].key).tier == "ssd"
    assert value(agent, "oca_fill_evictions_total", reason="not_listed") == 1


async def test_control_plane_down_or_garbage_keeps_the_store(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(2, 50_000, seed=9)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    agent = appliance()
    assert (await agent.run_once()).status is CycleStatus.COMPLETE
    generation_before = agent.store.generation()

    manifest_server.mode = "down"
    assert (await agent.run_once()).status is CycleStatus.UNREACHABLE
    manifest_server.mode = "garbage"
    result = await agent.run_once()
    assert result.status is CycleStatus.REJECTED and "$.items" in result.reason
    manifest_server.mode = "forbidden"
    assert (await agent.run_once()).status is CycleStatus.REJECTED
    assert agent.store.generation() == generation_before
    assert_holds_exactly(agent.store, files)

    manifest_server.mode = "ok"                                   # back: the kept manifest still matches (304)
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE and result.plan.empty and manifest_server.not_modified == 1
    assert value(agent, "oca_fill_manifest_fetches_total", outcome="unreachable") == 1
    assert value(agent, "oca_fill_manifest_fetches_total", outcome="rejected") == 2


async def test_unreachable_control_plane_address(tmp_path, appliance):
    agent = appliance(cp_url="http://127.0.0.1:9")                # nothing listens on port 9
    result = await agent.run_once()
    assert result.status is CycleStatus.UNREACHABLE


async def test_manifest_larger_than_the_disk(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(6, 400_000, seed=11)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    agent = appliance(ssd=("1MB",), hdd=("1MB",))                  # room for 2 files on hdd
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE
    assert (result.summary.fetched, result.summary.skipped) == (2, 4)
    assert_holds_exactly(agent.store, files[:2])


async def test_rate_cap_is_enforced(tmp_path, edge_factory, manifest_server, appliance):
    files = make_files(4, 500_000, seed=13)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    agent = appliance(rate="16Mbit")                              # 2 MB/s: 2 MB takes about a second
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE
    tb = agent.throttle
    assert tb.rate == 2_000_000 and tb.granted == 2_000_000
    # The bucket made the downloads wait (its own accounting), and the run cannot have been faster than
    # the cap allows (a lower bound, which a slow machine cannot break).
    assert tb.waited > 0
    assert result.summary.elapsed >= (2_000_000 - tb.burst) / 2_000_000 * 0.95
    assert value(agent, "oca_fill_rate_limit_bytes_per_second") == 2_000_000


async def test_an_empty_file_needs_no_request(tmp_path, manifest_server, appliance):
    empty = File("t9/empty.vtt", b"")
    manifest_server.doc = manifest_doc([item(1, empty, [{"kind": "origin", "url": "http://127.0.0.1:9/t9/empty.vtt"}])])
    agent = appliance()
    result = await agent.run_once()
    assert result.status is CycleStatus.COMPLETE
    assert_holds_exactly(agent.store, [empty])
