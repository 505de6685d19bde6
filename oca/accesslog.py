"""The access log: one line per request, buffered in the worker, written by a background thread.

Line format (space separated; quoted fields escape ``"``, ``\\`` and control bytes as ``\\xHH``)::

    TIME CLIENT METHOD PATH STATUS BYTES "RANGE" DURATION TIER KID "USER-AGENT" NOTE
    2026-11-25T17:00:00Z 203.0.113.9 GET /t1/avc-720p.mp4 206 65536 "bytes=0-65535" 0.000212 ssd k1 "dash.js" -

- TIME: UTC, second resolution, when the response finished; CLIENT: peer address.
- PATH: the URL path *without* the query string (so never the token); invalid targets as received.
- BYTES: body bytes actually handed to the kernel (less than Content-Length if the client left).
- RANGE: the Range header as received, or ``-``; DURATION: seconds from the end of the request head
  to the last byte, microsecond resolution.
- TIER: ``ssd``/``hdd`` (``root`` for ``oca serve --root``) or ``-``; KID: the token's key id or ``-``.
- NOTE: why the answer is what it is when it is not plain, e.g. ``token_expired``, ``not_in_index``,
  ``too_many`` (Range ignored), ``disk_fault`` — the 403 reason lives here and nowhere in the response.

`write` only appends to a list; every ``flush_interval`` (or when ``buffer_bytes`` is reached) the
buffer goes to a writer thread as one chunk, which it appends to the file with one ``write`` (O_APPEND:
workers sharing a file never interleave inside a chunk). If the disk stalls and more than 64 chunks
wait, new chunks are dropped and counted instead of growing memory. `reopen` (SIGUSR1) makes the
thread reopen the path, for logrotate.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path

log = logging.getLogger("oca.accesslog")
MAX_PENDING_CHUNKS = 64
_REOPEN, _STOP = object(), object()


class AccessLog:
    def __init__(self, path: Path | str, *, buffer_bytes: int = 65536) -> None:
        self.path = str(path)
        self.buffer_bytes = buffer_bytes
        self._lines: list[str] = []
        self._size = 0
        self.dropped_lines = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._fd = self._open()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, line: str) -> None:
        """Buffer one line (with its newline)."""
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered lines to the writer thread (never blocks on the disk)."""
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        with self._lock:
            if self._pending >= MAX_PENDING_CHUNKS:
                self.dropped_lines += len(lines)
                return
            self._pending += 1
        self._queue.put("".join(lines).encode("utf-8", "backslashreplace"))

    def reopen(self) -> None:
        self.flush()
        self._queue.put(_REOPEN)

    def close(self) -> None:
        """Flush, wait for the thread to write everything, close the file."""
        self.flush()
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                os.close(self._fd)
                return
            if item is _REOPEN:
                try:
                    fd = self._open()
                except OSError as e:
                    log.error("cannot reopen access log %s: %s", self.path, e)
                    continue
                os.close(self._fd)
                self._fd = fd
                continue
            try:
                view = memoryview(item)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as e:
                log.error("access log write failed: %s", e)
            with self._lock:
                self._pending -= 1
