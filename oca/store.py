"""The appliance's tiered content store: files on disks (SSD = hot, HDD = warm), indexed in LMDB.

On each disk (a directory, normally a mount point):

    .oca-disk                 marker: {"disk_id": "ssd/0", "store_id": ...}; missing → the disk is failed
                              (an unmounted disk shows an empty mount point, which must not be served from)
    data/<hh>/<h>-<v>         a published file; <h> = sha256(key)[:32], <v> = random version
    data/<hh>/<h>-<v>.meta    its sidecar: key, size, sha256, publish time — what `rebuild` reads
    staging/part-<h>-<s>      a resumable partial download (<s> = first 16 hex of the expected sha256)
    staging/part-...json      the partial's metadata (key, size, sha256, validator for If-Range)
    staging/tmp-<pid>-<n>     a non-resumable copy in progress (`add`, `move`)

Disk paths never come from a request: the index maps a validated key to (disk, relative path), and
file names are derived from a hash of the key, so no key can name a path.

Publishing is atomic: the bytes are written into the disk's staging directory, fsync'd, checked
against the expected size and SHA-256, then (holding the store's publish lock) the sidecar and the
file are renamed into ``data/`` and one LMDB transaction makes the entry visible; the replaced
version's files are deleted afterwards. A crash leaves at worst an unreferenced file in ``data/``
or a file in ``staging/``; `Store.open(cleanup=True)` removes those (keeping young partials, which
the fill agent resumes).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from oca.config import DiskConfig, StoreConfig
from oca.contentkey import validate_key
from oca.index import DISK_OK, QUARANTINED, READY, DiskState, Entry, Index, etag_for, fsync_dir
from oca.tiering import DiskSpace, NoRoom, choose_disk

log = logging.getLogger("oca.store")
MARKER = ".oca-disk"
CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")

__all__ = ["Store", "Staging", "Entry", "DiskState", "DiskUsage", "VerifyResult", "StoreError",
           "TierFull", "VerifyFailed", "UnknownTier", "NotInStore", "init_disks"]


class StoreError(Exception):
    """A store operation failed; the message says what and for which key."""


class TierFull(StoreError):
    pass


class VerifyFailed(StoreError):
    pass


class UnknownTier(StoreError):
    pass


class NotInStore(StoreError):
    pass


@dataclass(frozen=True)
class DiskUsage:
    id: str
    tier: str
    path: Path
    capacity: int
    used: int
    state: str
    reason: str = ""


@dataclass(frozen=True)
class Partial:
    """A resumable download in a disk's staging directory (see `Staging`)."""
    key: str
    disk: str
    size: int           # the file's full size
    sha256: str
    have: int           # bytes downloaded so far
    mtime: float
    in_use: bool        # a process holds it open right now


@dataclass(frozen=True)
class VerifyResult:
    key: str
    status: str      # "ok" | "mismatch" | "missing" | "io_error" | "disk_failed"
    detail: str = ""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def check_sha256(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise StoreError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
    return sha256


def hash_file(path: Path, *, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 and length of a file (or of its first `limit` bytes)."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while limit is None or n < limit:
            chunk = f.read(CHUNK if limit is None else min(CHUNK, limit - n))
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def init_disks(config: StoreConfig) -> list[str]:
    """Create every disk's layout and marker (idempotent). Returns what it created."""
    created = []
    store_id = _store_id(config)
    for disk in config.disks:
        for sub in ("data", "staging"):
            (disk.path / sub).mkdir(parents=True, exist_ok=True)
        marker = disk.path / MARKER
        if not marker.exists():
            _write_json_atomic(marker, {"disk_id": disk.id, "store_id": store_id})
            created.append(disk.id)
    return created


def _store_id(config: StoreConfig) -> str:
    for disk in config.disks:
        with suppress(OSError, ValueError, KeyError):
            return json.loads((disk.path / MARKER).read_text())["store_id"]
    return secrets.token_hex(8)


class Store:
    """The store as one process sees it. Open after fork; close when done."""

    def __init__(self, config: StoreConfig, index: Index, clock: Callable[[], float]) -> None:
        self.config, self.index, self.clock = config, index, clock
        self._lock_path = config.index_path / "publish.lock"

    @classmethod
    def open(cls, config: StoreConfig, *, clock: Callable[[], float] = time.time,
             cleanup: bool = False) -> Store:
        store = cls(config, Index(config.index_path, config.map_size), clock)
        store.check_disks()
        if cleanup:
            store.cleanup()
        return store

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------------
    def lookup(self, key: str) -> Entry | None:
        return self.index.lookup_ready(key)

    def get(self, key: str) -> Entry | None:
        return self.index.get(key)

    def path_of(self, entry: Entry) -> Path:
        disk = self.config.disk(entry.disk)
        if disk is None:
            raise StoreError(f"{entry.key}: disk {entry.disk} is not in the configuration")
        return disk.path / entry.relpath

    def entries(self) -> Iterator[Entry]:
        return self.index.entries()

    def generation(self) -> int:
        return self.index.generation()

    def changes_since(self, generation: int) -> tuple[int, list[Entry], list[str]] | None:
        """Inventory delta: (current generation, entries now ready, keys no longer ready)."""
        result = self.index.journal_since(generation)
        if result is None:
            return None
        current, changes = result
        if any(op == "disk" for op, _ in changes):
            return None  # a disk changed state: many keys at once; a full snapshot says it best
        upserted: dict[str, Entry] = {}
        removed: set[str] = set()
        for _, key in changes:
            entry = self.lookup(key)
            if entry is None:
                removed.add(key)
                upserted.pop(key, None)
            else:
                upserted[key] = entry
                removed.discard(key)
        return current, list(upserted.values()), sorted(removed)

    def hits(self, key: str) -> int:
        return self.index.hits(key)

    def record_hits(self, hits: Mapping[str, int]) -> None:
        self.index.add_hits(hits)

    # -- disks ----------------------------------------------------------------------------------
    def disk_states(self) -> dict[str, DiskState]:
        recorded = self.index.disk_states()
        return {d.id: recorded.get(d.id, DISK_OK) for d in self.config.disks}

    def mark_disk_failed(self, disk_id: str, reason: str) -> None:
        if self.index.set_disk_state(disk_id, DiskState("failed", reason, time.time_ns())):
            log.error("disk %s failed: %s", disk_id, reason)

    def check_disks(self) -> dict[str, DiskState]:
        """Probe each disk; mark failed the ones whose marker cannot be read (EIO, unmounted, gone).

        A failed disk stays failed until `verify` finds it readable again: files on a flaky disk
        are not served on the strength of one good probe."""
        for disk in self.config.disks:
            problem = _probe_disk(disk)
            if problem:
                self.mark_disk_failed(disk.id, problem)
        return self.disk_states()

    def usage(self) -> list[DiskUsage]:
        states = self.disk_states()
        return [DiskUsage(d.id, d.tier, d.path, d.capacity, self.index.used(d.id), states[d.id].state,
                          states[d.id].reason) for d in self.config.disks]

    def tier_capacity(self, tier: str) -> int:
        return sum(d.capacity for d in self._tier(tier))

    def tier_used(self, tier: str) -> int:
        return sum(self.index.used(d.id) for d in self._tier(tier))

    def _tier(self, tier: str) -> tuple[DiskConfig, ...]:
        disks = self.config.tier_disks(tier)
        if not disks:
            raise UnknownTier(f"tier {tier!r} has no disks (configured: "
                              f"{', '.join(sorted({d.tier for d in self.config.disks}))})")
        return disks

    def _place(self, tier: str, size: int, key: str) -> DiskConfig:
        states = self.disk_states()
        spaces = [DiskSpace(d.id, d.capacity, self.index.used(d.id) + _staged_bytes(d),
                            _fs_free(d.path), states[d.id].state == "ok") for d in self._tier(tier)]
        placement = choose_disk(spaces, size)
        if isinstance(placement, NoRoom):
            raise TierFull(f"{key}: tier {tier} is full: {size} bytes needed, the largest free space on "
                           f"{placement.usable_disks} usable disk(s) is {placement.largest_free} bytes")
        return next(d for d in self.config.disks if d.id == placement.disk_id)

    # -- writing --------------------------------------------------------------------------------
    def stage(self, key: str, *, size: int, sha256: str, tier: str | None = None) -> Staging:
        """A resumable staging file for `key` on a disk of `tier` (an existing partial is reused)."""
        validate_key(key)
        check_sha256(sha256)
        tier = tier or self.config.default_tier
        name = f"part-{key_hash(key)}-{sha256[:16]}"
        for disk in self._tier(tier):
            if (disk.path / "staging" / name).exists() and self.disk_states()[disk.id].state == "ok":
                return Staging(self, disk, key, size, sha256, name)
        self._discard_partials(key)
        return Staging(self, self._place(tier, size, key), key, size, sha256, name)

    def partials(self) -> list[Partial]:
        """The partial downloads on healthy disks, by disk then name."""
        out: list[Partial] = []
        states = self.disk_states()
        for disk in self.config.disks:
            if states[disk.id].state != "ok":
                continue
            for meta in sorted((disk.path / "staging").glob("part-*.json")):
                data = _partial_data(meta)
                try:
                    m = json.loads(meta.read_text())
                    st = data.stat()
                    out.append(Partial(m["key"], disk.id, int(m["size"]), m["sha256"], st.st_size, st.st_mtime,
                                       _is_locked(data)))
                except (OSError, ValueError, KeyError, TypeError):
                    continue        # being written or torn: cleanup() judges those by age
        return out

    def discard_partial(self, key: str) -> bool:
        """Delete the partial downloads of `key` on every disk, except one a process is writing now.
        True when something was deleted."""
        validate_key(key)
        return self._discard_partials(key, keep_locked=True)

    def _discard_partials(self, key: str, *, keep_locked: bool = False) -> bool:
        prefix, removed = f"part-{key_hash(key)}-", False
        for disk in self.config.disks:
            with suppress(OSError):
                for p in (disk.path / "staging").iterdir():
                    if not p.name.startswith(prefix) or (keep_locked and _is_locked(_partial_data(p))):
                        continue
                    p.unlink(missing_ok=True)
                    removed = True
        return removed

    def add_file(self, key: str, src: str | os.PathLike[str], *, tier: str | None = None,
                 sha256: str | None = None) -> Entry:
        """Copy a local file into the store and publish it. With `sha256`, the copy must match it."""
        validate_key(key)
        tier = tier or self.config.default_tier
        src = Path(src)
        try:
            size = src.stat().st_size
        except OSError as e:
            raise StoreError(f"{key}: cannot read source file {src}: {e.strerror}") from None
        disk = self._place(tier, size, key)
        with _TempFile(disk) as tmp, open(src, "rb") as f:
            digest = tmp.copy_from(f)
            if sha256 is not None and digest != check_sha256(sha256):
                raise VerifyFailed(f"{key}: sha256 mismatch: expected {sha256}, source has {digest}")
            return self._publish(key, disk, tmp.path, size, digest)

    def _publish(self, key: str, disk: DiskConfig, staged: Path, size: int, sha256: str) -> Entry:
        """Move a verified, fsync'd staged file into data/ and make it visible in one transaction."""
        h = key_hash(key)
        relpath = f"data/{h[:2]}/{h}-{secrets.token_hex(6)}"
        final = disk.path / relpath
        now_ns = int(self.clock() * 1e9)
        entry = Entry(key, disk.tier, disk.id, relpath, size, sha256, etag_for(sha256), now_ns, READY)
        with self._publish_lock():
            final.parent.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(final.with_name(final.name + ".meta"),
                               {"key": key, "size": size, "sha256": sha256, "published_ns": now_ns},
                               tmp_dir=disk.path / "staging")
            os.rename(staged, final)
            fsync_dir(final.parent)
            old = self.index.write(lambda txn: self.index.put(entry, txn))
        if old is not None and (old.disk, old.relpath) != (entry.disk, entry.relpath):
            self._delete_files(old)
        return entry

    def remove(self, key: str) -> bool:
        """Remove a key from the index, then its files. True if it was there."""
        validate_key(key)
        old = self.index.write(lambda txn: self.index.delete(key, txn))
        if old is None:
            return False
        self._delete_files(old)
        return True

    def move(self, key: str, tier: str) -> Entry:
        """Copy to a disk of `tier`, verify, swap the index entry, then delete the old copy."""
        old = self.get(key)
        if old is None:
            raise NotInStore(f"{key}: not in the store")
        if old.tier == tier:
            return old
        disk = self._place(tier, old.size, key)
        with _TempFile(disk) as tmp, open(self.path_of(old), "rb") as f:
            digest = tmp.copy_from(f)
            if digest != old.sha256 or tmp.size != old.size:
                self.quarantine(key, "sha256 mismatch while moving")
                raise VerifyFailed(f"{key}: the copy on {old.disk} does not match its sha256; quarantined")
            return self._publish(key, disk, tmp.path, old.size, old.sha256)

    def quarantine(self, key: str, reason: str) -> None:
        if self.index.write(lambda txn: self.index.set_state(key, QUARANTINED, txn)) is not None:
            log.warning("quarantined %s: %s", key, reason)

    def _delete_files(self, entry: Entry) -> None:
        with suppress(OSError, StoreError):
            path = self.path_of(entry)
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".meta").unlink(missing_ok=True)

    @contextmanager
    def _publish_lock(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- verify, rebuild, cleanup -----------------------------------------------------------------
    def verify(self, key: str | None = None) -> list[VerifyResult]:
        """Re-hash files (all, or one key). Mismatches are quarantined; a failed disk whose marker
        reads again is brought back, and files that hash right are ready again."""
        for disk in self.config.disks:
            if self.disk_states()[disk.id].state != "ok" and not _probe_disk(disk):
                self.index.set_disk_state(disk.id, DISK_OK)
                log.info("disk %s is readable again", disk.id)
        if key is not None:
            entry = self.get(validate_key(key))
            if entry is None:
                raise NotInStore(f"{key}: not in the store")
            targets: Iterator[Entry] = iter([entry])
        else:
            targets = self.entries()
        return [self._verify_one(e) for e in targets]

    def _verify_one(self, entry: Entry) -> VerifyResult:
        if self.disk_states()[entry.disk].state != "ok":
            return VerifyResult(entry.key, "disk_failed", self.disk_states()[entry.disk].reason)
        try:
            digest, size = hash_file(self.path_of(entry))
        except FileNotFoundError:
            result = VerifyResult(entry.key, "missing", str(self.path_of(entry)))
        except OSError as e:
            result = VerifyResult(entry.key, "io_error", e.strerror or str(e))
        else:
            if digest == entry.sha256 and size == entry.size:
                if entry.state != READY:
                    self.index.write(lambda txn: self.index.set_state(entry.key, READY, txn))
                return VerifyResult(entry.key, "ok")
            result = VerifyResult(entry.key, "mismatch", f"size {size}, sha256 {digest}")
        self.quarantine(entry.key, f"verify: {result.status} {result.detail}")
        return result

    def rebuild(self, *, rehash: bool = False) -> int:
        """Reconstruct the index from the disks' sidecars (the newest version of each key wins).
        With `rehash`, every file is hashed; otherwise sizes are checked. Returns the entry count."""
        found: dict[str, Entry] = {}
        for disk in self.config.disks:
            if _probe_disk(disk):
                continue
            self.index.set_disk_state(disk.id, DISK_OK)
            for entry in _scan_sidecars(disk, rehash):
                if entry.key not in found or entry.mtime_ns > found[entry.key].mtime_ns:
                    found[entry.key] = entry

        def replace_all(txn: Any) -> None:
            self.index.clear_entries(txn)
            for entry in found.values():
                self.index.put(entry, txn)
        with self._publish_lock():
            self.index.write(replace_all)
        return len(found)

    def cleanup(self) -> list[str]:
        """Remove what a crash can leave behind. Returns the paths removed (for the log)."""
        removed: list[str] = []
        with self._publish_lock():
            referenced = {(e.disk, e.relpath) for e in self.entries()}
            for disk in self.config.disks:
                if self.disk_states()[disk.id].state != "ok":
                    continue
                removed += _clean_staging(disk, self.clock(), self.config.partial_max_age)
                removed += _clean_orphans(disk, referenced)
        for path in removed:
            log.info("cleanup removed %s", path)
        return removed


class Staging:
    """A partial download for one key, written in order and hashed as it goes.

    Survives a crash: the bytes and a small JSON file (key, size, sha256, validator) stay in the
    disk's staging directory until `commit` publishes them or `abort` deletes them."""

    def __init__(self, store: Store, disk: DiskConfig, key: str, size: int, sha256: str,
                 name: str) -> None:
        self.store, self.disk, self.key, self.size, self.sha256 = store, disk, key, size, sha256
        self.path = disk.path / "staging" / name
        self._meta_path = self.path.with_name(name + ".json")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise StoreError(f"{key}: another process is downloading it right now") from None
        self._hash = hashlib.sha256()
        self.validator: str | None = None
        self.offset = self._resume()

    def _resume(self) -> int:
        try:
            meta = json.loads(self._meta_path.read_text())
            ok = (meta["key"], meta["size"], meta["sha256"]) == (self.key, self.size, self.sha256)
        except (OSError, ValueError, KeyError):
            ok = False
        if not ok:
            self.truncate()
            return 0
        self.validator = meta.get("validator")
        length = os.fstat(self._fd).st_size
        if length > self.size:
            self.truncate()
            return 0
        os.lseek(self._fd, 0, os.SEEK_SET)
        remaining = length
        while remaining:
            chunk = os.read(self._fd, min(CHUNK, remaining))
            if not chunk:
                break
            self._hash.update(chunk)
            remaining -= len(chunk)
        return length - remaining

    def _save_meta(self) -> None:
        _write_json_atomic(self._meta_path, {"key": self.key, "size": self.size, "sha256": self.sha256,
                                             "validator": self.validator})

    def set_validator(self, value: str | None) -> None:
        self.validator = value
        self._save_meta()

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self.offset = 0
        self._save_meta()

    def write(self, data: bytes) -> None:
        if self.offset + len(data) > self.size:
            self.abort()
            raise VerifyFailed(f"{self.key}: source sent more than the expected {self.size} bytes")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._hash.update(data)
        self.offset += len(data)

    def commit(self) -> Entry:
        """Verify size and SHA-256, then publish atomically. On mismatch the partial is deleted."""
        digest = self._hash.hexdigest()
        if self.offset != self.size or digest != self.sha256:
            self.abort()
            raise VerifyFailed(f"{self.key}: got {self.offset} bytes with sha256 {digest}, expected "
                               f"{self.size} bytes with sha256 {self.sha256}")
        os.fsync(self._fd)
        try:
            entry = self.store._publish(self.key, self.disk, self.path, self.size, self.sha256)
        finally:
            self._meta_path.unlink(missing_ok=True)
            self.close()
        return entry

    def abort(self) -> None:
        self.path.unlink(missing_ok=True)
        self._meta_path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TempFile:
    """A non-resumable staging copy, locked while alive so cleanup can tell it from a crash's leftover."""

    def __init__(self, disk: DiskConfig) -> None:
        self.path = disk.path / "staging" / f"tmp-{os.getpid()}-{secrets.token_hex(6)}"
        self.size = 0

    def __enter__(self) -> _TempFile:
        self._f: BinaryIO = open(self.path, "xb")
        fcntl.flock(self._f.fileno(), fcntl.LOCK_EX)
        return self

    def copy_from(self, src: BinaryIO) -> str:
        h = hashlib.sha256()
        while chunk := src.read(CHUNK):
            h.update(chunk)
            self._f.write(chunk)
            self.size += len(chunk)
        self._f.flush()
        os.fsync(self._f.fileno())
        return h.hexdigest()

    def __exit__(self, *exc: object) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)  # gone already when published


def _probe_disk(disk: DiskConfig) -> str:
    """'' when the disk looks healthy, else why not."""
    try:
        marker = json.loads((disk.path / MARKER).read_text())
    except FileNotFoundError:
        return f"marker {disk.path / MARKER} missing (disk not mounted or not initialised)"
    except OSError as e:
        return f"cannot read {disk.path / MARKER}: {e.strerror or e}"
    except ValueError:
        return f"marker {disk.path / MARKER} is corrupt"
    if marker.get("disk_id") != disk.id:
        return f"marker says {marker.get('disk_id')!r}, configuration says {disk.id!r} (disks swapped?)"
    return ""


def _fs_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _staged_bytes(disk: DiskConfig) -> int:
    """Bytes reserved by partial downloads on this disk (their expected sizes)."""
    total = 0
    with suppress(OSError):
        for p in (disk.path / "staging").glob("part-*.json"):
            with suppress(OSError, ValueError, KeyError):
                total += int(json.loads(p.read_text())["size"])
    return total


def _partial_data(path: Path) -> Path:
    """The data file of a partial download, given it or its ``.json`` metadata."""
    return path.with_name(path.name[:-5]) if path.name.endswith(".json") else path


def _is_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _clean_staging(disk: DiskConfig, now: float, max_age: float) -> list[str]:
    removed = []
    for p in sorted((disk.path / "staging").iterdir()):
        if p.name.startswith("part-"):
            data = _partial_data(p)
            meta = data.with_name(data.name + ".json")
            young = any(now - q.stat().st_mtime < max_age for q in (data, meta) if q.exists())
            if (young and data.exists() and meta.exists()) or _is_locked(data):
                continue
        elif p.name.startswith("tmp-") and _is_locked(p):
            continue
        elif p.name.startswith(".") and p.name.endswith(".tmp") and _pid_alive(p.name.split(".")[-3]):
            continue  # a small JSON file another live process is about to rename into place
        p.unlink(missing_ok=True)
        removed.append(str(p))
    return removed


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _clean_orphans(disk: DiskConfig, referenced: set[tuple[str, str]]) -> list[str]:
    removed = []
    for sub in sorted((disk.path / "data").iterdir()):
        if not sub.is_dir():
            continue
        for p in sorted(sub.iterdir()):
            data = p.with_name(p.name[:-5]) if p.name.endswith(".meta") else p
            rel = f"data/{sub.name}/{data.name}"
            if (disk.id, rel) in referenced and data.exists():
                continue
            p.unlink(missing_ok=True)
            removed.append(str(p))
    return removed


def _scan_sidecars(disk: DiskConfig, rehash: bool) -> Iterator[Entry]:
    for meta in (disk.path / "data").glob("*/*.meta"):
        data = meta.with_name(meta.name[:-5])
        try:
            m = json.loads(meta.read_text())
            key, size, sha256 = validate_key(m["key"]), int(m["size"]), check_sha256(m["sha256"])
            if data.stat().st_size != size:
                continue
            if rehash and hash_file(data) != (sha256, size):
                continue
        except (OSError, ValueError, KeyError, StoreError):
            continue
        rel = f"data/{data.parent.name}/{data.name}"
        yield Entry(key, disk.tier, disk.id, rel, size, sha256, etag_for(sha256),
                    int(m.get("published_ns", 0)), READY)


def _write_json_atomic(path: Path, obj: Any, *, tmp_dir: Path | None = None) -> None:
    tmp = (tmp_dir or path.parent) / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise StoreError(f"no space left writing {path}") from None
        raise

