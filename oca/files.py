"""What the edge can serve: a per-worker cached view of the index, and cached open file descriptors.

The request path never builds a filesystem path from a URL: a validated content key is looked up
in an index source — the store's LMDB index (`StoreSource`) or, for ``oca serve --root``, an
in-memory index built at start (`RootSource`) — and the file is opened from the path that source
recorded. Lookups are cached per worker (`IndexView`); every ``files.refresh_interval`` the view
asks the source for its generation and drops the keys that changed (published, removed, moved,
quarantined), or everything when the source cannot say what changed. So a change in the index is
visible to the workers within one refresh interval; until then a removed file is still served from
its open descriptor, which keeps the old bytes readable.

Open descriptors are cached (`FdCache`, LRU, ``files.open_files`` per worker). A response holds a
reference while it sends, so evicting or invalidating a descriptor never closes it under a sendfile.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from oca.conditional import format_http_date
from oca.contentkey import InvalidKey, validate_key

log = logging.getLogger("oca.files")

CONTENT_TYPES = {
    "mp4": "video/mp4", "m4v": "video/mp4", "m4s": "video/iso.segment", "m4a": "audio/mp4",
    "mpd": "application/dash+xml", "m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t",
    "vtt": "text/vtt", "webm": "video/webm", "json": "application/json", "txt": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8", "jpg": "image/jpeg", "png": "image/png",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


def content_type_for(key: str) -> str:
    _, dot, ext = key.rpartition(".")
    return CONTENT_TYPES.get(ext.lower(), DEFAULT_CONTENT_TYPE) if dot and "/" not in ext else \
        DEFAULT_CONTENT_TYPE


class ServedFile:
    """One servable file with its validators and the header lines every 200/206 of it carries."""

    __slots__ = ("key", "tier", "disk", "path", "size", "etag", "last_modified", "mtime_ns",
                 "content_type", "head_tail")

    def __init__(self, key: str, tier: str, disk: str, path: str, size: int, etag: str, mtime_ns: int) -> None:
        self.key, self.tier, self.disk, self.path, self.size = key, tier, disk, path, size
        self.etag, self.mtime_ns = etag, mtime_ns
        self.last_modified = mtime_ns // 1_000_000_000   # HTTP dates have whole seconds
        self.content_type = content_type_for(key)
        self.head_tail = (f"Content-Type: {self.content_type}\r\nETag: {etag}\r\n"
                          f"Last-Modified: {format_http_date(self.last_modified)}\r\n"
                          f"Accept-Ranges: bytes\r\n").encode("latin-1")

    def __repr__(self) -> str:
        return f"ServedFile({self.key!r}, {self.tier}, {self.size} bytes, {self.etag})"


class IndexSource(Protocol):
    """Where a worker's `IndexView` gets its answers."""

    def lookup(self, key: str) -> ServedFile | None: ...
    def generation(self) -> int: ...
    def changed_since(self, generation: int) -> tuple[int, list[str]] | None: ...
    def quarantine(self, key: str, reason: str) -> None: ...
    def disk_states(self) -> dict[str, tuple[str, str]]: ...
    def record_hits(self, hits: dict[str, int]) -> None: ...
    def close(self) -> None: ...


class StoreSource:
    """The store's LMDB index (`oca.store.Store`), opened in the worker process."""

    def __init__(self, store) -> None:  # noqa: ANN001 — oca.store.Store, imported by the caller
        self.store = store

    def lookup(self, key: str) -> ServedFile | None:
        e = self.store.lookup(key)
        if e is None:
            return None
        return ServedFile(e.key, e.tier, e.disk, str(self.store.path_of(e)), e.size, e.etag, e.mtime_ns)

    def generation(self) -> int:
        return self.store.generation()

    def changed_since(self, generation: int) -> tuple[int, list[str]] | None:
        result = self.store.changes_since(generation)
        if result is None:
            return None
        current, upserted, removed = result
        return current, [e.key for e in upserted] + list(removed)

    def quarantine(self, key: str, reason: str) -> None:
        self.store.quarantine(key, reason)

    def disk_states(self) -> dict[str, tuple[str, str]]:
        return {disk: (s.state, s.reason) for disk, s in self.store.disk_states().items()}

    def record_hits(self, hits: dict[str, int]) -> None:
        self.store.record_hits(hits)

    def close(self) -> None:
        self.store.close()


@dataclass(frozen=True)
class RootScan:
    files: dict[str, ServedFile]
    skipped: list[tuple[str, str]]   # (relative path, why)


def scan_root(root: str | os.PathLike[str]) -> RootScan:
    """Index every regular file under `root` whose relative path is a valid content key.

    ETag = size and mtime in ns (like nginx's): indexing needs one stat per file, not a read of
    every byte, so a large origin tree starts at once. Symlinks are followed only when their
    target stays inside `root`; anything else (and names that are not content keys) is skipped.
    """
    base = Path(os.path.realpath(root))
    files: dict[str, ServedFile] = {}
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                skipped.append((os.path.relpath(os.path.join(dirpath, name), base), "symlinked directory"))
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            entry = _root_entry(base, rel, full)
            if isinstance(entry, str):
                skipped.append((rel, entry))
            else:
                files[rel] = entry
    return RootScan(files, skipped)


def _root_entry(base: Path, rel: str, full: str) -> ServedFile | str:
    try:
        validate_key(rel)
    except InvalidKey as e:
        return f"not a content key: {e.reason}"
    real = os.path.realpath(full)
    if os.path.commonpath([real, str(base)]) != str(base):
        return "symlink leaves the root"
    try:
        st = os.stat(real)
    except OSError as e:
        return f"cannot stat: {e.strerror}"
    if not os.path.isfile(real):
        return "not a regular file"
    return ServedFile(rel, "root", "root", real, st.st_size, f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
                      st.st_mtime_ns)


# A directory's mtime comes from the kernel's coarse clock (one tick, a few ms): a file added in the same
# tick as an earlier change to that directory leaves its mtime as it was ("racy" timestamps, as git calls
# them). A tree whose newest directory changed this recently is not taken as settled.
SETTLE_NS = 2_000_000_000


def tree_signature(root: str | os.PathLike[str]) -> int | None:
    """A digest of every directory's path and mtime under `root`: it changes when a file is added,
    removed or renamed into place (what publishing does), at the cost of one stat per directory.
    Files edited in place keep it; the edge notices those itself when it opens them. None while a
    directory changed within SETTLE_NS: a later change in the same clock tick would not show in it."""
    parts, newest = [], 0
    for dirpath, _dirnames, _filenames in os.walk(root, followlinks=False):
        try:
            mtime = os.stat(dirpath).st_mtime_ns
        except OSError:
            continue
        parts.append((dirpath, mtime))
        newest = max(newest, mtime)
    if newest > time.time_ns() - SETTLE_NS:
        return None
    return hash(tuple(sorted(parts)))


class RootSource:
    """``oca serve --root DIR``: the directory indexed in memory at start (and again on SIGHUP)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.realpath(root))
        scan = scan_root(self.root)
        for rel, why in scan.skipped:
            log.warning("not serving %s: %s", rel, why)
        self.files = scan.files
        self._generation = 1
        self._changed: list[str] = []

    def lookup(self, key: str) -> ServedFile | None:
        return self.files.get(key)

    def generation(self) -> int:
        return self._generation

    def changed_since(self, generation: int) -> tuple[int, list[str]] | None:
        return (self._generation, list(self._changed)) if generation == self._generation - 1 else None

    def quarantine(self, key: str, reason: str) -> None:
        # A plain directory has no index to distrust: the file was edited or replaced (or is
        # unreadable). Index it again as it is now, or drop it if it can no longer be served.
        entry = _root_entry(self.root, key, str(self.root / key))
        if isinstance(entry, str):
            log.warning("not serving %s any more: %s (%s)", key, entry, reason)
            self.files.pop(key, None)
        else:
            log.info("re-indexed %s: %s", key, reason)
            self.files[key] = entry
        self._generation += 1
        self._changed = [key]

    def disk_states(self) -> dict[str, tuple[str, str]]:
        ok = os.access(self.root, os.R_OK | os.X_OK)
        return {"root": ("ok", "") if ok else ("failed", f"{self.root} is not readable")}

    def record_hits(self, hits: dict[str, int]) -> None:
        pass  # nothing to keep them in: the root index lives in memory only

    def close(self) -> None:
        pass

    def entries(self) -> Iterator[ServedFile]:
        return iter(self.files.values())


class FileChanged(OSError):
    """The file on disk is not the one the index describes (size differs, gone, unreadable)."""


class OpenFile:
    __slots__ = ("fd", "path", "refs", "stale")

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path, self.refs, self.stale = fd, path, 0, False


class FdCache:
    """LRU of open descriptors keyed by content key; `acquire`/`release` around each response."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._open: OrderedDict[str, OpenFile] = OrderedDict()

    def acquire(self, f: ServedFile) -> OpenFile:
        """An open descriptor for `f` (raises FileChanged/OSError when the file is not as indexed)."""
        of = self._open.get(f.key)
        if of is not None and of.path == f.path:
            if f.tier == "root":
                # A plain directory can be edited in place (the store never does: it renames new
                # versions in), so a cached descriptor is checked against the index every time.
                st = os.fstat(of.fd)
                if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
                    self.invalidate(f.key)
                    raise FileChanged(f"{f.path}: modified since it was indexed")
            self._open.move_to_end(f.key)
        else:
            if of is not None:
                self.invalidate(f.key)
            of = self._open_checked(f)
            self._open[f.key] = of
            if len(self._open) > self.capacity:
                self._drop(self._open.popitem(last=False)[1])
        of.refs += 1
        return of

    @staticmethod
    def _open_checked(f: ServedFile) -> OpenFile:
        fd = os.open(f.path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if st.st_size != f.size:
                raise FileChanged(f"{f.path}: size {st.st_size}, index says {f.size}")
            if f.tier == "root" and st.st_mtime_ns != f.mtime_ns:
                raise FileChanged(f"{f.path}: modified since it was indexed")
        except BaseException:
            os.close(fd)
            raise
        return OpenFile(fd, f.path)

    @property
    def open_files(self) -> OrderedDict[str, OpenFile]:
        """Content key → open descriptor, least recently used first (read by oca.http.compiled)."""
        return self._open

    def release(self, of: OpenFile) -> None:
        of.refs -= 1
        if of.stale and of.refs == 0:
            os.close(of.fd)

    def invalidate(self, key: str) -> None:
        of = self._open.pop(key, None)
        if of is not None:
            self._drop(of)

    def _drop(self, of: OpenFile) -> None:
        of.stale = True
        if of.refs == 0:
            os.close(of.fd)

    def clear(self) -> None:
        for key in list(self._open):
            self.invalidate(key)

    def __len__(self) -> int:
        return len(self._open)


class IndexView:
    """A worker's cached lookups over an `IndexSource`, refreshed by generation (see module doc)."""

    def __init__(self, source: IndexSource, fds: FdCache, *, max_cached: int = 200_000) -> None:
        self.source, self.fds, self.max_cached = source, fds, max_cached
        self._cache: dict[str, ServedFile] = {}
        self._generation = source.generation()

    def lookup(self, key: str) -> ServedFile | None:
        f = self._cache.get(key)
        if f is None:
            f = self.source.lookup(key)
            if f is not None:
                if len(self._cache) >= self.max_cached:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = f
        return f

    @property
    def cached(self) -> dict[str, ServedFile]:
        """Content key → file, as looked up so far (read by oca.http.compiled)."""
        return self._cache

    def refresh(self) -> bool:
        """Drop what changed in the source since the last refresh; True when something did."""
        current = self.source.generation()
        if current == self._generation:
            return False
        changes = self.source.changed_since(self._generation)
        if changes is None:
            self._cache.clear()
            self.fds.clear()
        else:
            for key in changes[1]:
                self._cache.pop(key, None)
                self.fds.invalidate(key)
        self._generation = current
        return True

    def quarantine(self, f: ServedFile, reason: str) -> None:
        """A disk fault on `f`: take it out of service here and in the source's index."""
        self._cache.pop(f.key, None)
        self.fds.invalidate(f.key)
        try:
            self.source.quarantine(f.key, reason)
        except Exception:
            log.exception("could not quarantine %s", f.key)

    def swap_source(self, source: IndexSource) -> IndexSource:
        """SIGHUP: serve from a freshly opened source; returns the old one for the caller to close."""
        old, self.source = self.source, source
        self._cache.clear()
        self.fds.clear()
        self._generation = source.generation()
        return old
