"""Read one kernel routing table (the routes BIRD learned over BGP) with a minimal netlink dump.

The appliance's BIRD exports BGP routes into a dedicated kernel table (default 100; never the main
table, so the box knows its ISP's client prefixes without forwarding by them). Reading that table is on
the reporter's path every interval, and a full ISP table is 100,000+ routes: pyroute2's generic dump
parses every attribute of every route into Python objects (~15 s of CPU per 100k routes here), so this
module sends one ``RTM_GETROUTE`` dump request per family (rtnetlink(7)) and decodes only what the report
needs: destination, prefix length, table and type (docs/steering.md has both timings).

With ``NETLINK_GET_STRICT_CHK`` (Linux ≥ 4.20) the kernel filters the dump by table itself; the table is
checked here anyway, for older kernels. Default routes are skipped: a default route says nothing about
where clients are, and reporting ``0.0.0.0/0`` would make one appliance cover every client.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from dataclasses import dataclass

NETLINK_ROUTE = 0
NETLINK_GET_STRICT_CHK = 12
SOL_NETLINK = 270
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
RTA_DST, RTA_TABLE = 1, 15
RT_TABLE_COMPAT = 252
# rtm_type values that can carry client prefixes (rtnetlink(7)); local/broadcast/multicast cannot.
_ROUTE_TYPES = frozenset({1, 6, 7, 8})   # unicast, blackhole, unreachable, prohibit
_NLMSG = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
CLONE_NEWNET = 0x40000000


class RouteReadError(OSError):
    """The kernel refused the dump or the answer could not be decoded."""


@dataclass(frozen=True)
class KernelRoutes:
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def read_table(table: int, *, netns: str | None = None) -> KernelRoutes:
    """Prefixes of kernel routing table `table` (IPv4 and IPv6), sorted, without default routes.

    `netns` names a network namespace (``/run/netns/NAME``) to read instead of our own.
    """
    sock = _netlink_socket(netns)
    try:
        return KernelRoutes(_dump(sock, socket.AF_INET, table), _dump(sock, socket.AF_INET6, table))
    finally:
        sock.close()


def _netlink_socket(netns: str | None) -> socket.socket:
    if netns is None:
        return _open_socket()
    # setns(2) switches only the calling thread; a socket keeps the namespace it was created in, so a
    # short-lived thread enters the namespace, opens the socket and ends.
    result: list[socket.socket | BaseException] = []

    def enter_and_open() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise RouteReadError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(_open_socket())
        except BaseException as e:  # handed to the caller's thread
            result.append(e)

    thread = threading.Thread(target=enter_and_open, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    except OSError:
        pass  # kernel < 4.20: the dump is unfiltered and the table is checked below
    sock.bind((0, 0))
    return sock


def _request(family: int, table: int, seq: int) -> bytes:
    rtm_table = table if table < 256 else RT_TABLE_COMPAT
    attr = _RTA.pack(8, RTA_TABLE) + _U32.pack(table)
    body = _RTMSG.pack(family, 0, 0, 0, rtm_table, 0, 0, 0, 0) + attr
    return _NLMSG.pack(_NLMSG.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _dump(sock: socket.socket, family: int, table: int) -> tuple[str, ...]:
    seq = family  # one request per family on this socket: the family is a unique sequence number
    sock.send(_request(family, table, seq))
    prefixes: list[str] = []
    buf = bytearray(1 << 18)
    while True:
        n = sock.recv_into(buf)
        if _parse_chunk(memoryview(buf)[:n], family, table, seq, prefixes):
            break
    prefixes.sort()
    return tuple(prefixes)


def _parse_chunk(data: memoryview, family: int, table: int, seq: int, out: list[str]) -> bool:
    """Decode one recv's worth of messages into `out`; True when the dump is done."""
    offset, end = 0, len(data)
    addr_len = 4 if family == socket.AF_INET else 16
    while offset + _NLMSG.size <= end:
        length, kind, flags, msg_seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > end:
            raise RouteReadError(f"truncated netlink message (length {length})")
        if msg_seq == seq:
            if kind == NLMSG_DONE:
                if flags & NLM_F_DUMP_INTR:
                    raise RouteReadError("route dump interrupted by a concurrent change; read again")
                return True
            if kind == NLMSG_ERROR:
                (errno_neg,) = struct.unpack_from("=i", data, offset + _NLMSG.size)
                if errno_neg:
                    raise RouteReadError(-errno_neg, f"RTM_GETROUTE: {os.strerror(-errno_neg)}")
            elif kind == RTM_NEWROUTE:
                prefix = _route_prefix(data, offset + _NLMSG.size, offset + length, family, table, addr_len)
                if prefix is not None:
                    out.append(prefix)
        offset += (length + 3) & ~3
    return False


def _route_prefix(data: memoryview, start: int, end: int, family: int, table: int, addr_len: int) -> str | None:
    rtm_family, dst_len, _src, _tos, rtm_table, _proto, _scope, rtm_type, _flags = _RTMSG.unpack_from(data, start)
    if rtm_family != family or rtm_type not in _ROUTE_TYPES or dst_len == 0:
        return None
    dst = None
    route_table = rtm_table
    pos = start + _RTMSG.size
    while pos + 4 <= end:
        rta_len, rta_type = _RTA.unpack_from(data, pos)
        if rta_len < 4:
            break
        if rta_type == RTA_DST and rta_len - 4 == addr_len:
            dst = bytes(data[pos + 4:pos + 4 + addr_len])
        elif rta_type == RTA_TABLE and rta_len == 8:
            (route_table,) = _U32.unpack_from(data, pos + 4)
        pos += (rta_len + 3) & ~3
    if route_table != table or dst is None:
        return None
    return f"{socket.inet_ntop(family, dst)}/{dst_len}"


def read_table_pyroute2(table: int, *, netns: str | None = None) -> KernelRoutes:
    """The same answer through pyroute2's generic dump: fine for small tables, slow for full ones."""
    from pyroute2 import IPRoute

    ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
    try:
        result: dict[int, list[str]] = {socket.AF_INET: [], socket.AF_INET6: []}
        for family in result:
            for msg in ipr.get_routes(family=family, table=table):
                if msg["dst_len"] == 0 or msg["type"] not in _ROUTE_TYPES or msg.get_attr("RTA_TABLE") != table:
                    continue
                result[family].append(f"{msg.get_attr('RTA_DST')}/{msg['dst_len']}")
    finally:
        ipr.close()
    return KernelRoutes(tuple(sorted(result[socket.AF_INET])), tuple(sorted(result[socket.AF_INET6])))
