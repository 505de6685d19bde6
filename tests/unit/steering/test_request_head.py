"""steering/_request_head.h through `respond` with no lane: None for one plain GET head, False for anything
else (which the connection hands to aiohttp for good)."""

import pytest

from steering.decision import compiled_response

STEER = b"GET /api/v1/steer?ip=203.0.113.5&key=t1/a.mp4 HTTP/1.1\r\n"
HOST = b"Host: steering.example\r\n"


def kind(data: bytes) -> str:
    found = compiled_response(data, None, b"", b"test")
    return {None: "plain", False: "other"}[found]


@pytest.mark.parametrize("head", [
    STEER + HOST + b"\r\n",
    STEER + b"host:steering.example\r\n\r\n",                       # any case, no white space
    STEER + b"HOST: \t x \t\r\n\r\n",                                # white space around the value
    STEER + HOST + b"Connection: keep-alive\r\n\r\n",
    STEER + HOST + b"connection: Keep-Alive \r\n\r\n",
    STEER + HOST + b"User-Agent: wrk/4.2 (+x)\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
    b"GET /api/v1/steer?ip=2001:db8::1&key=t1%2Fa.mp4&limit=3 HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /api/v1/steer?title=t1 HTTP/1.1\r\n" + HOST + b"\r\n",          # plain; the answer is not cached
    b"GET /api/v1/steer?ip=x&key=y&z=!$'()*,;=:@/? HTTP/1.1\r\n" + HOST + b"\r\n",
    STEER + HOST + b"".join(b"X-%d: v\r\n" % n for n in range(63)) + b"\r\n",   # 64 fields
    b"GET /api/v1/steer/?ip=1.2.3.4&key=k HTTP/1.1\r\n" + HOST + b"\r\n",          # other paths: plain
    b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET / HTTP/1.1\r\n" + HOST + b"\r\n",
])
def test_plain_heads(head):
    assert kind(head) == "plain"


@pytest.mark.parametrize("head", [
    b"",
    STEER + HOST,                                                    # not ended
    STEER + HOST + b"\r\n" + STEER + HOST + b"\r\n",                 # pipelined
    STEER + HOST + b"\r\nX",                                         # bytes after the head
    STEER + b"\r\n",                                                 # no Host
    STEER + HOST + HOST + b"\r\n",                                   # two
    STEER.replace(b"HTTP/1.1", b"HTTP/1.0") + HOST + b"\r\n",
    STEER.replace(b"HTTP/1.1", b"HTTP/1.10") + HOST + b"\r\n",
    STEER.replace(b"GET", b"get") + HOST + b"\r\n",
    STEER.replace(b"GET", b"HEAD") + HOST + b"\r\n",
    STEER.replace(b"GET ", b"GET  ") + HOST + b"\r\n",                 # two spaces
    b"GET http://h/api/v1/steer?ip=1.2.3.4&key=k HTTP/1.1\r\n" + HOST + b"\r\n",   # absolute-form
    b"GET * HTTP/1.1\r\n" + HOST + b"\r\n",                                      # asterisk-form
    b"GET  HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /api/v1/steer?ip=1.2.3.4&key=k#f HTTP/1.1\r\n" + HOST + b"\r\n",        # not a target character
    b"GET /api/v1/steer?ip=1.2.3.4&key=%zz HTTP/1.1\r\n" + HOST + b"\r\n",        # a bad escape
    b"GET /api/v1/steer?ip=1.2.3.4&key=%2 HTTP/1.1\r\n" + HOST + b"\r\n",
    b"GET /api/v1/steer?ip=1.2.3.4&key=\xc3\xa9 HTTP/1.1\r\n" + HOST + b"\r\n",
    STEER.replace(b"\r\n", b"\n") + HOST + b"\r\n",                  # bare LF
    STEER + b"Host: h\n\r\n",
    STEER + b"Host: h\r\r\n\r\n",
    STEER + HOST + b"\n",
    STEER + b"Host : h\r\n\r\n",                                     # white space before the colon
    STEER + b"Ho(st: h\r\n\r\n",                                     # not a tchar
    STEER + b": h\r\n" + HOST + b"\r\n",                             # no name
    STEER + HOST + b" folded\r\n\r\n",                               # obs-fold
    STEER + HOST + b"X: caf\xc3\xa9\r\n\r\n",                        # obs-text
    STEER + HOST + b"X: a\x00b\r\n\r\n",
    STEER + HOST + b"Content-Length: 0\r\n\r\n",
    STEER + HOST + b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    STEER + HOST + b"Connection: close\r\n\r\n",
    STEER + HOST + b"Connection: keep-alive, Upgrade\r\n\r\n",
    STEER + HOST + b"Upgrade: h2c\r\n\r\n",
    STEER + HOST + b"Expect: 100-continue\r\n\r\n",
    STEER + HOST + b"".join(b"X-%d: v\r\n" % n for n in range(64)) + b"\r\n",   # 65 fields
    STEER + HOST + b"X: " + b"v" * 8192 + b"\r\n\r\n",               # over 8 KiB
])
def test_other_heads(head):
    assert kind(head) == "other"


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="respond"):
        compiled_response("GET", None, b"", b"s")
    with pytest.raises(TypeError, match="lane"):
        compiled_response(STEER + HOST + b"\r\n", (), b"", b"s")
