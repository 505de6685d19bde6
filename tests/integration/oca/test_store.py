"""The content store against real files and a real LMDB index."""

import os
import shutil

import pytest

from oca.index import Entry
from oca.store import MARKER, Store, StoreError, TierFull, VerifyFailed
from tests.storekit import open_store, random_file, sha256_of, store_config, visible_files


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path, ssd=("10MB", "10MB"), hdd=("50MB",))
    yield s
    s.close()


def test_add_lookup_and_read_back(store, tmp_path):
    sha = random_file(tmp_path / "src", 1_000_000)
    entry = store.add_file("t1/v.mp4", tmp_path / "src", tier="ssd", sha256=sha)
    assert (entry.key, entry.tier, entry.size, entry.sha256, entry.state) == ("t1/v.mp4", "ssd", 1_000_000, sha,
                                                                                "ready")
    assert entry.etag == f'"{sha[:32]}"'
    assert store.lookup("t1/v.mp4") == entry
    assert sha256_of(store.path_of(entry)) == sha
    assert "t1" not in entry.relpath  # disk paths are derived from a hash of the key, never the key


def test_placement_spreads_over_the_emptier_disk(store, tmp_path):
    random_file(tmp_path / "a", 3_000_000, 1)
    random_file(tmp_path / "b", 1_000_000, 2)
    assert store.add_file("a", tmp_path / "a", tier="ssd").disk == "ssd/0"
    assert store.add_file("b", tmp_path / "b", tier="ssd").disk == "ssd/1"
    assert store.add_file("c", tmp_path / "b", tier="ssd").disk == "ssd/1"
    assert store.tier_used("ssd") == 5_000_000 and store.tier_capacity("ssd") == 20_000_000


def test_replacing_a_key_swaps_atomically_and_deletes_the_old_file(store, tmp_path):
    random_file(tmp_path / "v1", 1000, 1)
    sha2 = random_file(tmp_path / "v2", 2000, 2)
    old = store.add_file("k", tmp_path / "v1")
    new = store.add_file("k", tmp_path / "v2")
    assert store.lookup("k") == new and new.sha256 == sha2
    assert not store.path_of(old).exists()
    assert sum(u.used for u in store.usage()) == 2000


def test_wrong_sha256_publishes_nothing(store, tmp_path):
    random_file(tmp_path / "src", 1000)
    with pytest.raises(VerifyFailed):
        store.add_file("k", tmp_path / "src", sha256="0" * 64)
    assert store.get("k") is None
    assert visible_files(tmp_path / "hdd0") == []


def test_full_tier_is_refused_with_nothing_half_written(store, tmp_path):
    random_file(tmp_path / "big", 10_000_001)
    with pytest.raises(TierFull, match="tier ssd is full: 10000001 bytes needed"):
        store.add_file("big", tmp_path / "big", tier="ssd")
    random_file(tmp_path / "fits", 10_000_000)
    store.add_file("fits", tmp_path / "fits", tier="ssd")            # exactly the capacity of one disk
    assert store.get("big") is None
    assert [f for f in visible_files(tmp_path) if "staging" in f] == []


def test_remove_and_move(store, tmp_path):
    sha = random_file(tmp_path / "src", 5000)
    store.add_file("k", tmp_path / "src", tier="ssd")
    moved = store.move("k", "hdd")
    assert moved.tier == "hdd" and sha256_of(store.path_of(moved)) == sha
    assert store.tier_used("ssd") == 0 and store.tier_used("hdd") == 5000
    assert store.remove("k") and store.get("k") is None and not store.path_of(moved).exists()
    assert not store.remove("k")


def test_failed_disk_is_not_served_until_verify_says_so(store, tmp_path):
    random_file(tmp_path / "src", 1000)
    entry = store.add_file("k", tmp_path / "src", tier="ssd")
    disk_dir = tmp_path / entry.disk.replace("/", "")
    shutil.move(disk_dir, tmp_path / "unplugged")                    # the disk disappears
    assert store.check_disks()[entry.disk].state == "failed"
    assert store.lookup("k") is None and store.get("k") is not None
    assert [r.status for r in store.verify("k")] == ["disk_failed"]
    shutil.move(tmp_path / "unplugged", disk_dir)                    # it comes back
    assert store.check_disks()[entry.disk].state == "failed"         # one good probe is not enough
    assert [r.status for r in store.verify()] == ["ok"]
    assert store.lookup("k") == entry


def test_unmounted_disk_with_an_empty_mount_point_is_failed(store, tmp_path):
    (tmp_path / "hdd0" / MARKER).unlink()
    assert "marker" in store.check_disks()["hdd/0"].reason


def test_corrupted_file_is_quarantined_by_verify(store, tmp_path):
    random_file(tmp_path / "src", 4096)
    entry = store.add_file("k", tmp_path / "src")
    with open(store.path_of(entry), "r+b") as f:
        f.seek(100)
        f.write(b"X")
    results = store.verify()
    assert [(r.key, r.status) for r in results] == [("k", "mismatch")]
    assert store.lookup("k") is None and store.get("k").state == "quarantined"
    os.unlink(store.path_of(entry))
    assert [r.status for r in store.verify("k")] == ["missing"]


def test_rebuild_after_losing_the_index(tmp_path):
    config = store_config(tmp_path, ssd=("10MB",), hdd=("10MB",))
    with Store.open(config) as s:
        for n in range(5):
            random_file(tmp_path / f"f{n}", 1000 + n, n)
            s.add_file(f"t/{n}", tmp_path / f"f{n}", tier="ssd" if n % 2 else "hdd")
        s.add_file("t/0", tmp_path / "f4")  # replaced: the newest version must win
        before = {e.key: e for e in s.entries()}
    shutil.rmtree(config.index_path)
    with Store.open(config) as s:
        assert list(s.entries()) == []
        assert s.rebuild(rehash=True) == 5
        after = {e.key: e for e in s.entries()}
        assert after == before
        assert s.tier_used("ssd") == sum(e.size for e in before.values() if e.tier == "ssd")


def test_inventory_deltas_follow_the_journal(store, tmp_path):
    random_file(tmp_path / "src", 100)
    g0 = store.generation()
    assert store.changes_since(g0) == (g0, [], [])
    a = store.add_file("a", tmp_path / "src")
    store.add_file("b", tmp_path / "src")
    g1 = store.generation()
    store.remove("b")
    store.add_file("c", tmp_path / "src")
    gen, upserted, removed = store.changes_since(g1)
    assert gen == store.generation() > g1
    assert [e.key for e in upserted] == ["c"] and removed == ["b"]
    gen, upserted, removed = store.changes_since(g0)
    assert sorted(e.key for e in upserted) == ["a", "c"] and removed == ["b"]
    store.quarantine("a", "test")
    assert store.changes_since(gen)[2] == ["a"] and a.key == "a"
    assert store.changes_since(gen + 100) is None   # from the future: another index
    assert store.changes_since(0) is None           # older than the journal


def test_staging_resumes_and_verifies(store, tmp_path):
    data = os.urandom(300_000)
    import hashlib
    sha = hashlib.sha256(data).hexdigest()
    with store.stage("t/v", size=len(data), sha256=sha, tier="ssd") as st:
        assert st.offset == 0
        st.set_validator('"etag-1"')
        st.write(data[:100_000])
    # a later run (another process, after a crash) finds the partial and resumes it
    st = store.stage("t/v", size=len(data), sha256=sha, tier="ssd")
    assert (st.offset, st.validator) == (100_000, '"etag-1"')
    assert store.lookup("t/v") is None           # a partial is never visible
    st.write(data[100_000:])
    entry = st.commit()
    assert store.lookup("t/v") == entry and sha256_of(store.path_of(entry)) == sha
    assert [f for f in visible_files(tmp_path) if "staging" in f] == []


def test_staging_with_wrong_bytes_is_discarded(store):
    st = store.stage("t/v", size=4, sha256="0" * 64, tier="hdd")
    st.write(b"abcd")
    with pytest.raises(VerifyFailed):
        st.commit()
    with pytest.raises(VerifyFailed, match="more than the expected"):
        store.stage("t/v", size=4, sha256="0" * 64, tier="hdd").write(b"abcde")
    assert store.stage("t/v", size=4, sha256="0" * 64, tier="hdd").offset == 0


def test_one_partial_has_one_writer(store):
    first = store.stage("t/v", size=4, sha256="1" * 64, tier="hdd")
    with pytest.raises(StoreError, match="another process is downloading it"):
        store.stage("t/v", size=4, sha256="1" * 64, tier="hdd")
    first.abort()


def test_partials_are_listed_and_discarded_but_not_while_written(store):
    with store.stage("t/a", size=10, sha256="3" * 64, tier="hdd") as st:
        st.write(b"123")
    writing = store.stage("t/b", size=8, sha256="4" * 64, tier="ssd")
    writing.write(b"12345")
    listed = {p.key: p for p in store.partials()}
    assert set(listed) == {"t/a", "t/b"}
    assert (listed["t/a"].size, listed["t/a"].have, listed["t/a"].sha256, listed["t/a"].in_use) == (
        10, 3, "3" * 64, False)
    assert (listed["t/b"].have, listed["t/b"].in_use) == (5, True)
    assert store.discard_partial("t/b") is False          # its writer holds it
    assert store.discard_partial("t/a") is True
    assert [p.key for p in store.partials()] == ["t/b"]
    assert store.stage("t/a", size=10, sha256="3" * 64, tier="hdd").offset == 0   # it starts over
    writing.abort()


def test_cleanup_removes_crash_leftovers_and_keeps_young_partials(store, tmp_path):
    random_file(tmp_path / "src", 100)
    entry = store.add_file("k", tmp_path / "src", tier="hdd")
    staging, data = tmp_path / "hdd0" / "staging", store.path_of(entry).parent
    (staging / "tmp-999999-abc").write_bytes(b"dead copy")
    (data / "0123-orphan").write_bytes(b"renamed but never committed")
    (data / "0123-orphan.meta").write_text("{}")
    with store.stage("p", size=10, sha256="2" * 64, tier="hdd") as st:
        st.write(b"12345")
    removed = store.cleanup()
    assert sorted(os.path.basename(p) for p in removed) == ["0123-orphan", "0123-orphan.meta", "tmp-999999-abc"]
    assert store.stage("p", size=10, sha256="2" * 64, tier="hdd").offset == 5
    assert store.lookup("k") == entry


def test_hits_are_counted_in_batches(store, tmp_path):
    random_file(tmp_path / "src", 10)
    store.add_file("k", tmp_path / "src")
    store.record_hits({"k": 3})
    store.record_hits({"k": 2, "other": 1})
    assert store.hits("k") == 5


def test_the_map_grows_when_full(tmp_path):
    config = store_config(tmp_path, map_size="1MiB", ssd=(), hdd=("1GB",))
    with Store.open(config) as s:
        for n in range(3000):   # ~3 MB of entries and journal through a 1 MiB map, one transaction each
            entry = Entry(f"t/{n:05d}/" + "x" * 200, "hdd", "hdd/0", f"data/00/{n}", 1, "0" * 64, '"0"', 0)
            s.index.write(lambda txn, e=entry: s.index.put(e, txn))
        assert s.index.map_size() > 1024 * 1024
        assert sum(1 for _ in s.entries()) == 3000
        assert s.tier_used("hdd") == 3000
