"""The edge server as an operator runs it: tokens, misses, faults, signals, workers, `--root`, CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oca.tokens import sign_query
from tests.integration.oca.edge_harness import (
    REPO,
    SECRET1,
    SECRET2,
    Edge,
    Reader,
    fetch,
    make_store,
    request,
    wait_for,
    write_keys,
)

DATA = os.urandom(100_000)


def signed(path: str, kid: str = "k1", secret: str = SECRET1, ttl: int = 600, cp: str | None = None) -> str:
    return f"{path}?{sign_query(path, kid, secret, int(time.time()) + ttl, cp)}"


# -- tokens ---------------------------------------------------------------------------------------
def test_tokens_required(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA}, tokens="require")
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        assert fetch(edge, signed("/t1/a.mp4")).body == DATA
        assert fetch(edge, signed("/t1/a.mp4") + "&player=x").status == 200
        assert fetch(edge, "/t1/a.mp4").status == 403
        assert fetch(edge, signed("/t1/a.mp4", ttl=-10)).status == 403
        assert fetch(edge, signed("/t1/a.mp4", secret=SECRET2)).status == 403
        assert fetch(edge, signed("/t1/a.mp4", kid="k9")).status == 403
        assert fetch(edge, signed("/t1/a.mp4", cp="127.0.0.0/8")).status == 200
        assert fetch(edge, signed("/t1/a.mp4", cp="203.0.113.0/24")).status == 403
        r = fetch(edge, signed("/t1/a.mp4", ttl=-10))
        assert b"expired" not in r.body          # the reason goes to the log and metrics only
        for reason in ("missing", "expired", "bad_signature", "unknown_key", "client_mismatch"):
            wait_for(lambda reason=reason: edge.metric(f'oca_token_failures_total{{reason="{reason}"}}') >= 1,
                     what=f"token failure {reason}")
        log = (tmp_path / "access.log")
        text = wait_for(lambda: "token_expired" in log.read_text() and log.read_text(), what="log")
        assert "sig=" not in text and "exp=" not in text      # the path is logged without the token
        assert " k1 " in text
    finally:
        assert edge.stop() == 0


# -- misses ---------------------------------------------------------------------------------------
def test_miss_redirects_with_query(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA},
                        extra='[miss]\naction = "redirect"\nredirect_base = "http://ixp-1.example:8080/base/"\n')
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        r = fetch(edge, "/t2/b.mp4?exp=1&kid=k1&sig=abc")
        assert r.status == 302
        assert r.header("location") == "http://ixp-1.example:8080/base/t2/b.mp4?exp=1&kid=k1&sig=abc"
        assert fetch(edge, "/t2/b.mp4").header("location") == "http://ixp-1.example:8080/base/t2/b.mp4"
        assert fetch(edge, "/t1/a.mp4").status == 200
        wait_for(lambda: edge.metric("oca_misses_total") >= 2, what="misses counted")
    finally:
        edge.stop()


# -- limits ---------------------------------------------------------------------------------------
def test_max_connections_per_worker(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA}, extra="[server.x]\n".replace("[server.x]\n", ""))
    text = config.read_text().replace("workers = 1\n", "workers = 1\nmax_connections = 2\n")
    config.write_text(text)
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        held = [edge.connect(), edge.connect()]
        for s in held:
            s.sendall(request("/t1/a.mp4", headers={"Range": "bytes=0-0"}))
            assert Reader(s).read().status == 206
        with edge.connect() as third:
            reader = Reader(third)
            assert reader.read().status == 503
            assert reader.closed()
        held.pop().close()
        wait_for(lambda: fetch(edge, "/t1/a.mp4", headers={"Range": "bytes=0-0"}).status == 206,
                 what="a slot frees up")
        for s in held:
            s.close()
        wait_for(lambda: edge.metric("oca_connections_rejected_total") >= 1, what="rejections counted")
    finally:
        edge.stop()


def test_send_timeout_closes_a_client_that_stops_reading(tmp_path: Path) -> None:
    big = os.urandom(16_000_000)
    config = make_store(tmp_path, {"t1/big.mp4": big}, extra='[limits]\nsend_timeout = "500ms"\n')
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.connect((edge.host, edge.port))
        s.sendall(request("/t1/big.mp4"))          # ... and never read
        wait_for(lambda: edge.metric('oca_timeouts_total{kind="send"}') >= 1, what="send timeout")
        wait_for(lambda: edge.metric("oca_active_connections") == 0, what="connection closed")
        s.close()
        assert fetch(edge, "/t1/big.mp4", headers={"Range": "bytes=0-9"}).body == big[:10]
    finally:
        edge.stop()


# -- disk fault -----------------------------------------------------------------------------------
def test_disk_fault_closes_quarantines_counts(tmp_path: Path) -> None:
    from oca.config import load_oca_config
    from oca.store import Store

    big = os.urandom(4_000_000)
    config = make_store(tmp_path, {"t1/big.mp4": big, "t1/ok.mp4": DATA})
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        assert fetch(edge, "/t1/big.mp4").body == big           # the worker now holds the file open
        with Store.open(load_oca_config(config).store) as store:
            path = store.path_of(store.get("t1/big.mp4"))
        os.truncate(path, 1000)                                  # the disk "loses" most of the file
        with edge.connect() as s:
            s.sendall(request("/t1/big.mp4"))
            with pytest.raises(ConnectionError):
                Reader(s).read()                                  # closed before Content-Length bytes
        assert fetch(edge, "/t1/big.mp4").status == 404          # out of service
        assert fetch(edge, "/t1/ok.mp4").body == DATA            # the rest still served
        wait_for(lambda: edge.metric("oca_disk_faults_total") >= 1, what="disk fault counted")
        with Store.open(load_oca_config(config).store) as store:
            assert store.get("t1/big.mp4").state == "quarantined"
    finally:
        edge.stop()


def test_not_ready_without_a_usable_disk(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA})
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        assert edge.admin_get("/readyz")[0] == 200
        for disk in ("ssd", "hdd"):
            (tmp_path / disk / ".oca-disk").unlink()      # as if unmounted
        edge.send(signal.SIGHUP)                           # probe now, not at the next 5 s check
        wait_for(lambda: edge.admin_get("/readyz")[0] == 503, what="not ready")
        assert "no usable disk" in edge.admin_get("/readyz")[1]
        assert 'oca_disk_state{disk="ssd/0",state="failed"} 1.0' in edge.admin_get("/metrics")[1]
        wait_for(lambda: fetch(edge, "/t1/a.mp4").status == 404, what="files on failed disks not served")
    finally:
        edge.stop()


def test_index_changes_are_picked_up(tmp_path: Path) -> None:
    from oca.config import load_oca_config
    from oca.store import Store

    config = make_store(tmp_path, {"t1/a.mp4": DATA})
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        assert fetch(edge, "/t1/new.mp4").status == 404
        src = tmp_path / "new"
        src.write_bytes(b"fresh bytes")
        with Store.open(load_oca_config(config).store) as store:
            store.add_file("t1/new.mp4", src)
            store.remove("t1/a.mp4")
        wait_for(lambda: fetch(edge, "/t1/new.mp4").body == b"fresh bytes", what="published file served")
        wait_for(lambda: fetch(edge, "/t1/a.mp4").status == 404, what="removed file gone")
    finally:
        edge.stop()


# -- signals --------------------------------------------------------------------------------------
def test_drain_finishes_a_download_in_flight(tmp_path: Path) -> None:
    big = os.urandom(24_000_000)
    config = make_store(tmp_path, {"t1/big.mp4": big})
    edge = Edge.start(["--config", str(config)], tmp_path)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)   # a slow reader: the response cannot finish
    s.settimeout(30)
    s.connect((edge.host, edge.port))
    s.sendall(request("/t1/big.mp4"))
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 ")
    edge.send(signal.SIGTERM)
    wait_for(lambda: edge.admin_get("/readyz")[0] == 503, what="not ready while draining")
    assert '"draining"' in edge.admin_get("/readyz")[1]

    def refused() -> bool:
        try:
            socket.create_connection((edge.host, edge.port), timeout=2).close()
        except OSError:
            return True
        return False
    wait_for(refused, what="no new connections")
    received = bytearray(first)
    while chunk := s.recv(1 << 20):
        received += chunk
    s.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert body == big
    assert edge.proc.wait(30) == 0
    edge.proc.stdout.close()


def test_sighup_rotates_keys_without_dropping_connections(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA}, tokens="require", workers=2)
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        held = edge.connect()
        reader = Reader(held)
        held.sendall(request(signed("/t1/a.mp4"), headers={"Range": "bytes=0-9"}))
        assert reader.read().status == 206
        write_keys(tmp_path / "keys.toml", k1="retired", k2="active")
        edge.send(signal.SIGHUP)
        wait_for(lambda: edge.metric("oca_reloads_total") >= 1, what="every worker reloaded")
        held.sendall(request(signed("/t1/a.mp4"), headers={"Range": "bytes=0-9"}))
        assert reader.read().status == 403                         # k1 retired, same connection
        held.sendall(request(signed("/t1/a.mp4", kid="k2", secret=SECRET2), headers={"Range": "bytes=0-9"}))
        assert reader.read().body == DATA[:10]
        held.close()
        assert fetch(edge, signed("/t1/a.mp4", kid="k2", secret=SECRET2)).status == 200
        # a broken config is refused as a whole: the running one stays
        config.write_text(config.read_text() + "\n[bogus]\n")
        edge.send(signal.SIGHUP)
        wait_for(lambda: "configuration not reloaded" in edge.stderr_path.read_text(), what="reload refused")
        assert fetch(edge, signed("/t1/a.mp4", kid="k2", secret=SECRET2)).status == 200
        assert edge.metric("oca_reloads_total") == 1
    finally:
        edge.stop()


def test_dead_worker_is_restarted(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA}, workers=2)
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        victim = edge.pids[0]
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            _, body = edge.admin_get("/healthz")
            import json
            workers = json.loads(body)["workers"]
            return victim not in [w["pid"] for w in workers] and all(w["ready"] for w in workers) and len(workers) == 2
        wait_for(replaced, timeout=20, what="worker replaced")
        assert edge.metric("oca_worker_restarts_total") == 1
        assert edge.metric("oca_workers") == 2
        for _ in range(10):
            assert fetch(edge, "/t1/a.mp4").body == DATA
    finally:
        assert edge.stop() == 0


def test_sigusr1_reopens_access_log(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA})
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        log = tmp_path / "access.log"
        fetch(edge, "/t1/a.mp4?first")
        wait_for(lambda: log.exists() and "/t1/a.mp4" in log.read_text(), what="first line")
        os.rename(log, tmp_path / "access.log.1")
        edge.send(signal.SIGUSR1)
        wait_for(lambda: log.exists(), what="log reopened")
        fetch(edge, "/t1/a.mp4", headers={"User-Agent": "after-rotate"})
        wait_for(lambda: "after-rotate" in log.read_text(), what="new line in the new file")
        assert "after-rotate" not in (tmp_path / "access.log.1").read_text()
    finally:
        edge.stop()


# -- `oca serve --root` ---------------------------------------------------------------------------
def test_root_mode(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "t1").mkdir(parents=True)
    (root / "t1" / "a.mp4").write_bytes(DATA)
    (root / "t1" / "bad name.mp4").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / "t1" / "leak.txt")     # leaves DIR: refused
    os.symlink(root / "t1" / "a.mp4", root / "t1" / "alias.mp4")     # stays inside: served
    os.symlink(tmp_path, root / "up")                                  # symlinked directory: not followed
    edge = Edge.start(["--root", str(root), "--listen", "127.0.0.1:0", "--workers", "2",
                       "--admin", "127.0.0.1:0"], tmp_path)
    try:
        r = fetch(edge, "/t1/a.mp4", headers={"Range": "bytes=10-19"})
        assert r.status == 206 and r.body == DATA[10:20]
        assert fetch(edge, "/t1/alias.mp4").body == DATA
        assert fetch(edge, "/t1/leak.txt").status == 404
        assert fetch(edge, "/up/secret.txt").status == 404
        assert fetch(edge, "/t1/a.mp4?no=token&needed=1").status == 200
        assert edge.admin_get("/readyz")[0] == 200
    finally:
        assert edge.stop(signal.SIGINT) == 0


def test_root_mode_sighup_reindexes(tmp_path: Path) -> None:
    (tmp_path / "old.bin").write_bytes(b"old")
    edge = Edge.start(["--root", str(tmp_path), "--listen", "127.0.0.1:0", "--workers", "2"], tmp_path)
    try:
        assert fetch(edge, "/new.bin").status == 404
        (tmp_path / "new.bin").write_bytes(b"new")
        edge.send(signal.SIGHUP)
        wait_for(lambda: all(fetch(edge, "/new.bin").status == 200 for _ in range(8)), what="re-indexed")
        with edge.connect() as s:   # a file edited in place gets a new ETag instead of stale bytes
            reader = Reader(s)
            s.sendall(request("/old.bin"))
            first = reader.read()
            (tmp_path / "old.bin").write_bytes(b"edited!")
            os.utime(tmp_path / "old.bin", ns=(1, 1))
            s.sendall(request("/old.bin"))
            second = reader.read()
        assert first.body == b"old" and second.body == b"edited!"
        assert first.header("etag") != second.header("etag")
    finally:
        assert edge.stop() == 0


def test_root_mode_rescan_picks_up_published_and_removed_files(tmp_path: Path) -> None:
    """An origin over the control plane's content directory: what ingest publishes (a new title
    directory, files renamed into place) is served without a SIGHUP; what is removed stops being."""
    root = tmp_path / "content"
    (root / "t1").mkdir(parents=True)
    (root / "t1" / "a.mp4").write_bytes(b"one")
    edge = Edge.start(["--root", str(root), "--listen", "127.0.0.1:0", "--workers", "2", "--rescan", "200ms"],
                      tmp_path)
    try:
        assert fetch(edge, "/t2/b.mp4").status == 404
        (root / "t2").mkdir()
        (root / "t2" / ".b.mp4.tmp").write_bytes(b"two")
        os.rename(root / "t2" / ".b.mp4.tmp", root / "t2" / "b.mp4")
        wait_for(lambda: all(fetch(edge, "/t2/b.mp4").body == b"two" for _ in range(8)), what="published file")
        os.unlink(root / "t1" / "a.mp4")
        wait_for(lambda: all(fetch(edge, "/t1/a.mp4").status == 404 for _ in range(8)), what="removed file")
    finally:
        assert edge.stop() == 0


def test_rescan_needs_root(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "oca.cli", "serve", "--config", str(tmp_path / "x.toml"),
                           "--rescan", "30s"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--rescan" in proc.stderr and "Traceback" not in proc.stderr


def test_root_mode_sigterm_clean_exit(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"abc")
    edge = Edge.start(["--root", str(tmp_path), "--listen", "127.0.0.1:0", "--workers", "1"], tmp_path)
    assert fetch(edge, "/f.bin").body == b"abc"
    assert edge.stop(signal.SIGTERM) == 0
    for pid in edge.pids:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or
                 "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], what="workers gone")


# -- CLI ------------------------------------------------------------------------------------------
def oca(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oca.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = make_store(tmp_path, {})
    config.write_text(config.read_text() + '\n[limits]\nmax_ranges = "many"\n'.replace("[limits]\n", "")
                      .replace("max_ranges", "[limits]\nmax_ranges"))
    r = oca("serve", "--config", str(config))
    assert r.returncode == 2 and "limits.max_ranges" in r.stderr
    r = oca("serve", "--root", str(tmp_path / "nope"))
    assert r.returncode == 2


def test_token_sign_cli(tmp_path: Path) -> None:
    config = make_store(tmp_path, {"t1/a.mp4": DATA}, tokens="require")
    r = oca("token", "sign", "t1/a.mp4", "--keys", str(tmp_path / "keys.toml"), "--ttl", "5m")
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    assert url.startswith("/t1/a.mp4?exp=") and "kid=k1" in url
    assert oca("token", "verify", url, "--keys", str(tmp_path / "keys.toml")).stdout.startswith("ok")
    edge = Edge.start(["--config", str(config)], tmp_path)
    try:
        assert fetch(edge, url).body == DATA
    finally:
        edge.stop()


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"abc")
    edge = Edge.start(["--root", str(tmp_path), "--listen", "127.0.0.1:0", "--workers", "2"], tmp_path)
    edge.proc.kill()
    edge.proc.wait()
    edge.proc.stdout.close()
    for pid in edge.pids:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", what=f"worker {pid} gone")
