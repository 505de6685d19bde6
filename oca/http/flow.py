"""Sending a response body: the head, then file bytes by os.sendfile, in order, without blocking.

A mixin of `EdgeProtocol` (its state lives in the protocol's slots). File bytes go out only when
the transport's buffer is empty — write-buffer limits are 0/0, so `pause_writing`/`resume_writing`
say exactly when it drains — so sendfile never overtakes head bytes the transport still holds. On
EAGAIN the connection waits for writability on a dup of the socket descriptor (uvloop refuses
`add_writer` on a descriptor its transport owns); the writer stays registered until the response
is complete. A head followed by a small body is sent with MSG_MORE (one TCP segment, not two).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from time import monotonic

_CLIENT_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT})
# Coalesce a head with the body that follows (MSG_MORE) only for small bodies: measured here, it
# saves ~10% CPU on 1 KiB ranges but costs ~40% on 64 KiB ones (the corked segment changes how the
# kernel cuts the large send).
MORE_MAX = 16 * 1024


class BodyFlow:
    """Body sending for `EdgeProtocol`; expects its attributes (transport, fd, wsock, current, ...)."""

    __slots__ = ()

    def _pump(self) -> bool:
        """Send body segments; True if it has to wait for the socket (it comes back by itself)."""
        reply, t = self.current, self.transport
        segs = reply.segments
        while self.seg_i < len(segs):
            seg = segs[self.seg_i]
            if type(seg) is bytes:
                if self.seg_i + 1 < len(segs):
                    self._write_more(seg, segs[self.seg_i + 1][1])
                else:
                    t.write(seg)
                self.sent += len(seg)
                self.seg_i += 1
                continue
            if t.get_write_buffer_size():
                self.awaiting_drain = True      # sendfile must not overtake buffered head bytes
                self._arm_send_timeout()
                return True
            offset, count = seg
            try:
                n = os.sendfile(self.fd, self.cur_file.fd, offset + self.seg_done, count - self.seg_done)
            except BlockingIOError:
                self._wait_writable()
                return True
            except OSError as e:
                self._sendfile_error(e)
                return True
            if n == 0:
                self._disk_fault(reply.file, "short read: file shorter than indexed", sendfile=True)
                self.abort()
                return True
            self.seg_done += n
            self.sent += n
            if self.seg_done == count:
                self.seg_i += 1
                self.seg_done = 0
        return False

    def _write_more(self, data: bytes, following: int) -> None:
        """Write bytes that `following` file bytes will follow. For a small body, with MSG_MORE so
        the kernel puts them in the same TCP segment as the sendfile (a head and a small range: one
        segment, not two) — only when the transport holds nothing, to keep the order; what the
        socket does not take goes through the transport, and `_pump` then waits for it to drain."""
        t = self.transport
        if following > MORE_MAX or t.get_write_buffer_size():
            t.write(data)
            return
        if self.wsock is None:
            self.wsock = socket.socket(fileno=os.dup(self.fd))
            self.wfd = self.wsock.fileno()
        try:
            n = self.wsock.send(data, socket.MSG_MORE)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0  # the transport will see the same error and close the connection
        if n < len(data):
            t.write(data[n:] if n else data)

    def _arm_send_timeout(self) -> None:
        self.deadline = monotonic() + self.s.ctx.limits.send_timeout
        self.deadline_kind = "send"

    def _wait_writable(self) -> None:
        # The writer stays registered until the response is complete: a large body hits EAGAIN
        # many times, and re-registering each time would cost two epoll_ctl calls per round.
        # It watches a dup of the socket: uvloop refuses add_writer on its transport's descriptor.
        if self.wsock is None:
            self.wsock = socket.socket(fileno=os.dup(self.fd))
            self.wfd = self.wsock.fileno()
        if not self.writer_on:
            asyncio.get_running_loop().add_writer(self.wfd, self._resume_body)
            self.writer_on = True
        self._arm_send_timeout()

    def _writer_off(self) -> None:
        if self.writer_on:
            asyncio.get_running_loop().remove_writer(self.wfd)
            self.writer_on = False

    def pause_writing(self) -> None:
        pass  # the transport holds bytes; `_pump` checks its buffer before each sendfile

    def resume_writing(self) -> None:
        if self.awaiting_drain:
            self.awaiting_drain = False
            self._resume_body()

    def _resume_body(self) -> None:
        if self.closed or self.current is None:
            return
        self.deadline = 0.0
        if self._pump():
            return
        closing = self.current.close
        self._complete()
        if not closing:
            self._run_queue()

    def _sendfile_error(self, e: OSError) -> None:
        if e.errno in _CLIENT_GONE:
            self.abort()
            return
        self._disk_fault(self.current.file, f"sendfile: {e.strerror or e}", sendfile=True)
        self.abort()
