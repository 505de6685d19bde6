"""Several reader processes look up and read while one process publishes, replaces and removes."""

import hashlib
import multiprocessing
import time

from oca.store import Store
from tests.storekit import random_file, store_config

KEYS = [f"t/{n}" for n in range(6)]


def reader(config, deadline, results):
    checked = 0
    with Store.open(config) as store:
        while time.time() < deadline:
            for key in KEYS:
                entry = store.lookup(key)
                if entry is None:
                    continue
                try:
                    data = store.path_of(entry).read_bytes()
                except FileNotFoundError:
                    continue  # replaced since the lookup: published files are immutable, the old one went away
                assert hashlib.sha256(data).hexdigest() == entry.sha256, f"{key}: torn read"
                assert len(data) == entry.size
                checked += 1
    results.put(checked)


def test_readers_never_see_partial_or_mismatched_files(tmp_path):
    config = store_config(tmp_path, ssd=("20MB",), hdd=("20MB",))
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    deadline = time.time() + 4
    readers = [ctx.Process(target=reader, args=(config, deadline, results)) for _ in range(3)]
    for r in readers:
        r.start()
    writes = 0
    with Store.open(config, cleanup=True) as store:
        while time.time() < deadline:
            key = KEYS[writes % len(KEYS)]
            if writes % 7 == 3:
                store.remove(key)
            else:
                random_file(tmp_path / "src", 50_000 + writes, writes)
                store.add_file(key, tmp_path / "src", tier="ssd" if writes % 2 else "hdd")
            writes += 1
    checked = [results.get(timeout=30) for _ in readers]
    for r in readers:
        r.join(timeout=30)
        assert r.exitcode == 0
    assert writes > 10 and all(c > 0 for c in checked)
