"""The edge's compiled request path (oca/http/_serve.c) and the lane it reads a worker's state through.

`Head(conn, shared, LimitExceeded, Request)` is `oca.http.head.Head` in C: httptools' callbacks for
one connection. When a head is complete and nothing is in flight or queued on the connection, it
answers a plain GET or HEAD of a file the worker has already looked up and opened — the request
players send for every segment — in the same call; anything else it queues, having sent and counted
nothing, for the Python path (`oca.http.handler.handle` and `EdgeProtocol`). `_serve.c`'s header
says exactly what it answers. `Head` is None when the module was not built (the Python path answers all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oca.metrics import DURATION_BUCKETS

if TYPE_CHECKING:
    from oca.http.protocol import Shared

try:
    from oca.http._serve import Head
except ImportError:  # not built: every request takes the Python path
    Head = None


def lane(shared: Shared) -> tuple:
    """What the compiled Head reads, in `_serve.c`'s L_* order (only that Head asks for it).

    Only objects that live as long as the worker's configuration: `Context.configure` drops the
    lane, and what the worker swaps at other times (the access log, the per-key hit counts) is read
    from `shared` on each call."""
    ctx = shared.ctx
    m = shared.metrics
    cors = True if ctx.cors_any else (ctx.cors_origins or None)
    # Tokens required without a key ring cannot verify anything: an empty memory leaves all to Python.
    memory = (ctx.verified.memory if ctx.verified is not None else {}) if ctx.require_tokens else None
    lim = ctx.limits
    return (ctx.keys, memory, ctx.view.cached, shared.fds.open_files, cors, ctx.clock, m,
            m.responses, m.ranges, m.hits, m.buckets, DURATION_BUCKETS, shared, ctx, float(lim.idle_timeout),
            (lim.max_request_line, lim.max_header_bytes, lim.max_headers, float(lim.header_timeout)))
