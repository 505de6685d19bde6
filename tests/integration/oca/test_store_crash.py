"""Crash safety: SIGKILL a publishing process at random points; every visible key must be whole."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oca.store import Store, hash_file
from tests.storekit import store_config

WORKER = Path(__file__).with_name("store_worker.py")


def check_store_is_consistent(store: Store, root: Path) -> int:
    entries = list(store.entries())
    referenced = set()
    for e in entries:
        path = store.path_of(e)
        assert e.state == "ready", e
        assert hash_file(path) == (e.sha256, e.size), f"{e.key}: visible but not whole"
        referenced.add(str(path))
        referenced.add(str(path) + ".meta")
    for disk in store.config.disks:
        for p in (disk.path / "data").rglob("*"):
            if p.is_file():
                assert str(p) in referenced, f"orphan left in data/: {p}"
        for p in (disk.path / "staging").iterdir():
            assert p.name.startswith("part-"), f"staging garbage: {p}"
        assert store.index.used(disk.id) == sum(e.size for e in entries if e.disk == disk.id)
    return len(entries)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_points_never_leaves_partial_files_visible(tmp_path, seed):
    config = store_config(tmp_path, ssd=("3MB", "3MB"), hdd=("8MB",))
    rng = random.Random(seed)
    published = 0
    for round_ in range(12):
        proc = subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "oca.toml"), str(seed * 100 + round_)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": "."})
        first = proc.stdout.readline()           # it has started working
        assert first, proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.4))        # ... and is killed somewhere in the middle of it
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        published += len(out.splitlines()) + 1
        with Store.open(config, cleanup=True) as store:
            check_store_is_consistent(store, tmp_path)
    assert published > 12                         # the worker really did work between kills
