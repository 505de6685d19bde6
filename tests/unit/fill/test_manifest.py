"""Fill manifest parsing: the contract's document is accepted, anything off is rejected with its path."""

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fill.controlplane import ManifestCache
from fill.manifest import ManifestError, parse_manifest

SHA = "ab" * 32


def doc(**over):
    d = {
        "version": 1, "appliance_id": "isp1-a", "generation": 17, "generated_at": "2026-11-25T17:00:00Z",
        "items": [
            {"rank": 1, "key": "t1/avc-720p.mp4", "title_id": "t1", "size": 123, "sha256": SHA, "tier": "ssd",
             "sources": [
                 {"kind": "peer", "appliance_id": "ixp-1", "url": "http://10.0.1.5:8080/t1/avc-720p.mp4?exp=1"},
                 {"kind": "origin", "url": "http://origin:8080/t1/avc-720p.mp4"}]},
            {"rank": 2, "key": "t1/aac.mp4", "title_id": "t1", "size": 0, "sha256": "cd" * 32, "tier": "hdd",
             "sources": [{"kind": "origin", "url": "https://origin/t1/aac.mp4"}]},
        ],
    }
    d.update(over)
    return d


def test_contract_document_parses():
    m = parse_manifest(json.dumps(doc()), appliance_id="isp1-a")
    assert (m.appliance_id, m.generation, m.total_bytes) == ("isp1-a", 17, 123)
    first = m.items[0]
    assert (first.rank, first.key, first.tier, first.sha256) == (1, "t1/avc-720p.mp4", "ssd", SHA)
    assert [s.kind for s in first.sources] == ["peer", "origin"]
    assert first.sources[0].appliance_id == "ixp-1" and first.sources[1].appliance_id is None


def test_unknown_fields_are_ignored():
    d = doc(extra={"x": 1})
    d["items"][0]["popularity"] = 0.5
    assert len(parse_manifest(json.dumps(d)).items) == 2


def test_empty_manifest_is_valid():
    assert parse_manifest(json.dumps(doc(items=[]))).items == ()


def mutate(path, value):
    d = doc()
    target = d
    for p in path[:-1]:
        target = target[p]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(d)


DELETE = object()

BAD = [
    ("not json", b"{nope", ""),
    ("not utf-8", b"\xff\xfe", ""),
    ("array", b"[]", "$"),
    ("version 2", ("version",), 2, "$.version"),
    ("version string", ("version",), "1", "$.version"),
    ("no appliance", ("appliance_id",), DELETE, "$.appliance_id"),
    ("other appliance", ("appliance_id",), "isp2-b", "$.appliance_id"),
    ("negative generation", ("generation",), -1, "$.generation"),
    ("bool generation", ("generation",), True, "$.generation"),
    ("items object", ("items",), {}, "$.items"),
    ("item not object", ("items", 0), "x", "$.items[0]"),
    ("traversal key", ("items", 0, "key"), "../etc/passwd", "$.items[0].key"),
    ("absolute key", ("items", 0, "key"), "/t1/a.mp4", "$.items[0].key"),
    ("float size", ("items", 0, "size"), 1.5, "$.items[0].size"),
    ("negative size", ("items", 0, "size"), -1, "$.items[0].size"),
    ("upper sha", ("items", 0, "sha256"), "AB" * 32, "$.items[0].sha256"),
    ("short sha", ("items", 0, "sha256"), "ab", "$.items[0].sha256"),
    ("tier nvme", ("items", 0, "tier"), "nvme", "$.items[0].tier"),
    ("no sources", ("items", 0, "sources"), [], "$.items[0].sources"),
    ("source kind", ("items", 0, "sources", 0, "kind"), "cache", "$.items[0].sources[0].kind"),
    ("ftp url", ("items", 0, "sources", 0, "url"), "ftp://x/y", "$.items[0].sources[0].url"),
    ("relative url", ("items", 0, "sources", 1, "url"), "/t1/a.mp4", "$.items[0].sources[1].url"),
    ("rank zero", ("items", 0, "rank"), 0, "$.items[0].rank"),
    ("rank order", ("items", 1, "rank"), 1, "$.items[1].rank"),
    ("duplicate key", ("items", 1, "key"), "t1/avc-720p.mp4", "$.items[1].key"),
    ("title id number", ("items", 0, "title_id"), 5, "$.items[0].title_id"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_garbage_is_rejected_with_its_path(case):
    if len(case) == 3:
        raw, where = case[1], case[2]
    else:
        raw, where = mutate(case[1], case[2]), case[3]
    with pytest.raises(ManifestError) as err:
        parse_manifest(raw, appliance_id="isp1-a")
    assert err.value.where == where
    assert str(err.value).startswith("fill manifest: ")


def test_parse_does_not_mutate_input():
    d = doc()
    before = copy.deepcopy(d)
    parse_manifest(json.dumps(d))
    assert d == before


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.binary(max_size=64)))
def test_anything_is_a_manifest_or_a_manifest_error(value):
    raw = value if isinstance(value, bytes) else json.dumps(value)
    try:
        parse_manifest(raw)
    except ManifestError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["version", "appliance_id", "generation", "items"]), json_values)
def test_any_top_level_field_swapped_for_junk_is_caught(field, junk):
    d = doc()
    d[field] = junk
    try:
        m = parse_manifest(json.dumps(d))
    except ManifestError as e:
        assert e.where.startswith("$")
    else:   # the junk happened to be valid for that field
        assert m.appliance_id and m.generation >= 0


def test_cache_keeps_the_last_good_and_ignores_a_damaged_file(tmp_path):
    cache = ManifestCache(tmp_path, "isp1-a")
    assert cache.load() is None
    cache.save(json.dumps(doc()), '"17"')
    manifest, etag = cache.load()
    assert manifest.generation == 17 and etag == '"17"'
    cache.path.write_text("{half")
    assert cache.load() is None
    cache.path.write_text(json.dumps({"etag": '"1"', "document": json.dumps(doc(appliance_id="other"))}))
    assert cache.load() is None
