"""The appliance's index of what it holds, in LMDB.

One LMDB environment (a directory) with named databases:

- ``entries``: content key → JSON of an `Entry` (tier, disk, relative path, size, sha256, etag, mtime, state).
- ``used``: disk id → bytes held by that disk's indexed files (kept in the same transactions as entries).
- ``hits``: content key → request count, added to in batches by the edge workers.
- ``disks``: disk id → JSON state (``ok`` / ``failed`` with a reason).
- ``journal``: sequence number → JSON change (``put``/``del`` of a key); the last sequence number is
  the index *generation*, which the reporter sends so the control plane can take deltas.
- ``meta``: store id, generation.

LMDB gives many reader processes (the edge's workers) lock-free, consistent snapshots while one
writer at a time commits. The map size starts at the configured value (default 1 GiB, ~3 million
entries) and doubles when a write finds it full; readers in other processes pick the new size up
when LMDB tells them it changed (`MapResizedError`).
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb

T = TypeVar("T")
READY, QUARANTINED = "ready", "quarantined"
JOURNAL_KEEP = 200_000   # changes kept for deltas; an older generation gets a full snapshot
_U64 = struct.Struct(">Q")
_GEN = b"generation"


@dataclass(frozen=True)
class Entry:
    key: str
    tier: str
    disk: str
    relpath: str
    size: int
    sha256: str
    etag: str
    mtime_ns: int
    state: str = READY


@dataclass(frozen=True)
class DiskState:
    state: str            # "ok" | "failed"
    reason: str = ""
    since_ns: int = 0


DISK_OK = DiskState("ok")


def etag_for(sha256: str) -> str:
    """Strong ETag (RFC 9110 §8.8.3) derived from the content hash: same bytes, same tag, on every box."""
    return f'"{sha256[:32]}"'


class Index:
    """LMDB-backed index. Open one per process (never share across fork)."""

    def __init__(self, path: Path, map_size: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        # mode 0660: the edge, the fill agent and the reporter run as different users of one group.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=8, max_readers=1024, mode=0o660,
                             readahead=False, metasync=True, sync=True)
        self._db = {name: self.env.open_db(name.encode()) for name in
                    ("entries", "used", "hits", "disks", "journal", "meta")}
        self._init_generation()

    def close(self) -> None:
        self.env.close()

    # -- transactions ---------------------------------------------------------------------------
    def read(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        while True:
            try:
                with self.env.begin() as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)  # adopt the size another process grew the map to

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def _init_generation(self) -> None:
        # A fresh index starts its generation at the current time in microseconds, so a rebuilt
        # index never reuses generations an earlier one reported to the control plane.
        def init(txn: lmdb.Transaction) -> None:
            if txn.get(_GEN, db=self._db["meta"]) is None:
                txn.put(_GEN, _U64.pack(time.time_ns() // 1000), db=self._db["meta"])
        self.write(init)

    # -- entries --------------------------------------------------------------------------------
    def get(self, key: str, txn: lmdb.Transaction | None = None) -> Entry | None:
        if txn is None:
            return self.read(lambda t: self.get(key, t))
        raw = txn.get(key.encode(), db=self._db["entries"])
        return _decode_entry(raw) if raw is not None else None

    def lookup_ready(self, key: str) -> Entry | None:
        """The entry if it is ready and its disk is not failed: what may be served."""
        def find(txn: lmdb.Transaction) -> Entry | None:
            entry = self.get(key, txn)
            if entry is None or entry.state != READY:
                return None
            disk = txn.get(entry.disk.encode(), db=self._db["disks"])
            if disk is not None and json.loads(disk)["state"] != "ok":
                return None
            return entry
        return self.read(find)

    def entries(self) -> Iterator[Entry]:
        """Every entry, in key order, from one consistent snapshot (read in chunks)."""
        after = b""
        while True:
            chunk = self.read(lambda txn, a=after: _entry_chunk(txn, self._db["entries"], a, 1000))
            yield from (e for _, e in chunk)
            if len(chunk) < 1000:
                return
            after = chunk[-1][0]

    def put(self, entry: Entry, txn: lmdb.Transaction) -> Entry | None:
        """Insert or replace; keeps per-disk usage and the journal. Returns the replaced entry."""
        old = self.get(entry.key, txn)
        if old is not None:
            self._add_used(txn, old.disk, -old.size)
        self._add_used(txn, entry.disk, entry.size)
        txn.put(entry.key.encode(), _encode_entry(entry), db=self._db["entries"])
        self._journal(txn, "put", entry.key)
        return old

    def delete(self, key: str, txn: lmdb.Transaction) -> Entry | None:
        old = self.get(key, txn)
        if old is None:
            return None
        self._add_used(txn, old.disk, -old.size)
        txn.delete(key.encode(), db=self._db["entries"])
        txn.delete(key.encode(), db=self._db["hits"])
        self._journal(txn, "del", key)
        return old

    def set_state(self, key: str, state: str, txn: lmdb.Transaction) -> Entry | None:
        old = self.get(key, txn)
        if old is None or old.state == state:
            return old
        new = Entry(**{**asdict(old), "state": state})
        txn.put(key.encode(), _encode_entry(new), db=self._db["entries"])
        self._journal(txn, "put", key)
        return new

    def clear_entries(self, txn: lmdb.Transaction) -> None:
        for name in ("entries", "used", "hits"):
            txn.drop(self._db[name], delete=False)
        self._journal(txn, "reset", "")

    # -- usage, hits, disks ---------------------------------------------------------------------
    def used(self, disk_id: str) -> int:
        return self.read(lambda txn: _get_u64(txn, self._db["used"], disk_id.encode()))

    def _add_used(self, txn: lmdb.Transaction, disk_id: str, delta: int) -> None:
        value = max(_get_u64(txn, self._db["used"], disk_id.encode()) + delta, 0)
        txn.put(disk_id.encode(), _U64.pack(value), db=self._db["used"])

    def add_hits(self, hits: Mapping[str, int]) -> None:
        def add(txn: lmdb.Transaction) -> None:
            db = self._db["hits"]
            for key, count in hits.items():
                k = key.encode()
                txn.put(k, _U64.pack(_get_u64(txn, db, k) + count), db=db)
        if hits:
            self.write(add)

    def hits(self, key: str) -> int:
        return self.read(lambda txn: _get_u64(txn, self._db["hits"], key.encode()))

    def disk_states(self) -> dict[str, DiskState]:
        def all_states(txn: lmdb.Transaction) -> dict[str, DiskState]:
            return {k.decode(): DiskState(**json.loads(v)) for k, v in txn.cursor(db=self._db["disks"])}
        return self.read(all_states)

    def set_disk_state(self, disk_id: str, state: DiskState) -> bool:
        """Record a disk's state; returns True when it changed (and bumps the generation)."""
        def put(txn: lmdb.Transaction) -> bool:
            raw = txn.get(disk_id.encode(), db=self._db["disks"])
            if raw is not None and json.loads(raw)["state"] == state.state:
                return False
            if raw is None and state.state == "ok":
                return False
            txn.put(disk_id.encode(), json.dumps(asdict(state)).encode(), db=self._db["disks"])
            self._journal(txn, "disk", disk_id)
            return True
        return self.write(put)

    # -- journal --------------------------------------------------------------------------------
    def generation(self) -> int:
        return self.read(lambda txn: _get_u64(txn, self._db["meta"], _GEN))

    def _journal(self, txn: lmdb.Transaction, op: str, key: str) -> None:
        gen = _get_u64(txn, self._db["meta"], _GEN) + 1
        txn.put(_GEN, _U64.pack(gen), db=self._db["meta"])
        txn.put(_U64.pack(gen), json.dumps([op, key]).encode(), db=self._db["journal"])
        if gen % 1024 == 0:
            self._trim_journal(txn, gen - JOURNAL_KEEP)

    def _trim_journal(self, txn: lmdb.Transaction, below: int) -> None:
        cursor = txn.cursor(db=self._db["journal"])
        while cursor.first() and _U64.unpack(cursor.key())[0] < below:
            cursor.delete()

    def journal_since(self, generation: int) -> tuple[int, list[tuple[str, str]]] | None:
        """(current generation, [(op, key), ...] after `generation`), or None if the journal
        no longer reaches back to `generation` (or it is from another index)."""
        def since(txn: lmdb.Transaction) -> tuple[int, list[tuple[str, str]]] | None:
            current = _get_u64(txn, self._db["meta"], _GEN)
            if generation > current:
                return None
            cursor = txn.cursor(db=self._db["journal"])
            if generation == current:
                return current, []
            if not cursor.first() or _U64.unpack(cursor.key())[0] > generation + 1:
                return None
            changes: list[tuple[str, str]] = []
            if cursor.set_range(_U64.pack(generation + 1)):
                for _, raw in cursor:
                    op, key = json.loads(raw)
                    if op == "reset":
                        return None
                    changes.append((op, key))
            return current, changes
        return self.read(since)

    def map_size(self) -> int:
        return int(self.env.info()["map_size"])


def _encode_entry(entry: Entry) -> bytes:
    return json.dumps(asdict(entry), separators=(",", ":")).encode()


def _decode_entry(raw: bytes) -> Entry:
    return Entry(**json.loads(raw))


def _get_u64(txn: lmdb.Transaction, db: Any, key: bytes) -> int:
    raw = txn.get(key, db=db)
    return _U64.unpack(raw)[0] if raw is not None else 0


def _entry_chunk(txn: lmdb.Transaction, db: Any, after: bytes, n: int) -> list[tuple[bytes, Entry]]:
    cursor = txn.cursor(db=db)
    out: list[tuple[bytes, Entry]] = []
    if not cursor.set_range(after):
        return out
    for k, v in cursor:
        if k == after:
            continue
        out.append((bytes(k), _decode_entry(v)))
        if len(out) == n:
            break
    return out


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
