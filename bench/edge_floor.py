"""The floor of the mandated stack: what uvloop + httptools + os.sendfile cost with no features at all.

``python -m bench.edge_floor ROOT PORT`` serves the files under ROOT on 127.0.0.1:PORT and prints
``ready`` when listening. Per request it does only what any server on this stack must: httptools
parses, the path (query dropped) is looked up in a dict of open descriptors, one ``bytes=A-B`` range
is honoured, a fixed head goes out (MSG_MORE before a small body, like ours) and sendfile sends the
body, waiting for writability on EAGAIN. No tokens, conditionals, validation, limits, metrics or
access log — so it is not a server anyone should run. The edge bench runs it beside nginx and ours:
its ratio to nginx is the best this stack can reach here, and ours minus it is what our features cost.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httptools
import uvloop

SMALL = 16 * 1024


class FloorProtocol(asyncio.Protocol):
    def __init__(self, files: dict[bytes, tuple[int, int]]) -> None:
        self.files = files
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.out = socket.socket(fileno=os.dup(sock.fileno()))  # uvloop owns the original descriptor
        self.out.setblocking(False)
        self.url, self.range = b"", None
        self.pending: tuple[int, int, int] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending is not None:
            asyncio.get_running_loop().remove_writer(self.out.fileno())
        self.out.close()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"range":
            self.range = value

    def on_message_complete(self) -> None:
        fd, size = self.files.get(self.url.partition(b"?")[0], (-1, 0))
        rng, self.range = self.range, None
        if fd < 0:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        if rng is None:
            first, count = 0, size
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
        else:
            a, _, b = rng[6:].partition(b"-")
            first, last = int(a), min(int(b), size - 1)
            count = last - first + 1
            head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n" \
                % (first, last, size, count)
        self.out.send(head, socket.MSG_MORE if count <= SMALL else 0)
        self._send(fd, first, count)

    def _send(self, fd: int, offset: int, count: int) -> None:
        while count:
            try:
                n = os.sendfile(self.out.fileno(), fd, offset, count)
            except BlockingIOError:
                if self.pending is None:
                    asyncio.get_running_loop().add_writer(self.out.fileno(), self._writable)
                self.pending = (fd, offset, count)
                return
            except OSError:
                self.transport.close()
                return
            offset += n
            count -= n
        if self.pending is not None:
            asyncio.get_running_loop().remove_writer(self.out.fileno())
            self.pending = None

    def _writable(self) -> None:
        if self.pending is not None:
            self._send(*self.pending)


def open_files(root: Path) -> dict[bytes, tuple[int, int]]:
    files = {}
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            files[b"/" + str(path.relative_to(root)).encode()] = (fd, os.fstat(fd).st_size)
    return files


async def serve(root: Path, port: int) -> None:
    files = open_files(root)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    server = await asyncio.get_running_loop().create_server(lambda: FloorProtocol(files), sock=sock)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    uvloop.install()
    try:
        asyncio.run(serve(root, port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
