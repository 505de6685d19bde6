"""`make run` as a user runs it: the whole CDN comes up, a real player plays through it, the ISP
appliance serves it, and when that appliance dies playback carries on from the exchange point."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def free_port_block(n: int = 8) -> int:
    for base in range(20000, 60000, 97):
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


class Lines:
    """Read a process's stdout in a thread; wait for a line that satisfies a predicate."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.log = log
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _reading(self) -> bool:
        return self.thread.is_alive()

    def _read(self, proc: subprocess.Popen) -> None:
        with open(self.log, "a") as log:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    result = predicate(line)
                    if result:
                        return result
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and not self._reading():
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"exited with {self.proc.returncode} before {what}; last lines:\n{tail}")
                if left <= 0:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"timed out waiting for {what}; see {self.log}; last lines:\n{tail}")
                self.cond.wait(min(left, 1.0))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def player_state(line: str):
    return json.loads(line[len("state: "):]) if line.startswith("state: ") else None


def test_make_run_plays_from_the_isp_appliance_and_fails_over(tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian chromium is required (apt-get install chromium; make test installs it as root)")
    port_base = free_port_block()
    demo = subprocess.Popen([sys.executable, "-m", "demo", "--state-dir", str(tmp_path / "run"), "--port-base",
                             str(port_base), "--duration", "60"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    player = None
    try:
        out = Lines(demo, tmp_path / "demo.log")
        ready = out.wait_for(lambda line: line.startswith("ready: ") and json.loads(line[7:]), 900,
                             "the demo's ready line")
        pids = json.loads((tmp_path / "run" / "pids.json").read_text())
        embedded = next(i for i, a in ready["appliances"].items() if a["kind"] == "embedded")
        ixp = next(i for i, a in ready["appliances"].items() if a["kind"] == "ixp")

        import urllib.request
        with urllib.request.urlopen(ready["dash"], timeout=10) as r:
            mpd = r.read().decode()
        assert "<MPD" in mpd and ready["appliances"][embedded]["base_url"] in mpd

        # dash.js, the page's default player: when an appliance dies it blacklists that BaseURL's
        # serviceLocation after the segment's retries and the steering answer drops it (docs/steering.md).
        page = ready["player"] + "&player=dash&buffer=6"
        player = subprocess.Popen(["node", str(HERE / "watch_page.mjs"), page], cwd=HERE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        states = Lines(player, tmp_path / "player.log")
        first = states.wait_for(lambda line: (s := player_state(line)) and s.get("currentTime", 0) >= 10 and s, 120,
                                "10 s of playback")
        assert first["errors"] == [], first["errors"]
        served_by = {s["appliance"] for s in first["segments"]}
        assert embedded in served_by, f"segments came from {served_by}, not the ISP appliance"
        access_log = Path(ready["appliances"][embedded]["access_log"])
        assert " 206 " in access_log.read_text() or '"status": 206' in access_log.read_text()

        os.killpg(pids[embedded], signal.SIGKILL)          # the ISP appliance dies mid-play
        at_kill, segments_at_kill = first["currentTime"], len(first["segments"])
        # Past what was buffered when it died, every byte played came from somewhere else.
        must_reach = at_kill + first.get("bufferAhead", 0) + 6
        later = states.wait_for(
            lambda line: (s := player_state(line)) and s["currentTime"] >= must_reach and s, 180,
            f"playback to reach {must_reach:.0f} s, beyond what was buffered when the ISP appliance died")
        after = {s["appliance"] for s in later["segments"][segments_at_kill:]}
        assert after & {ixp, "origin-1"}, f"segments after the failure came from {after}"
        assert embedded not in after or ixp in after
        assert later["errors"] == [], later["errors"]
        # Segment downloads dash.js gave up on and loaded from another appliance: only from the dead one.
        dead = ready["appliances"][embedded]["base_url"].rstrip("/") + "/"
        assert all(dead in e for e in later.get("recovered", [])), later["recovered"]
    finally:
        if player is not None:
            player.terminate()
            player.wait(timeout=30)
            player.stdout.close()
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)                # Ctrl-C
        code = demo.wait(timeout=120)
        demo.stdout.close()
    assert code == 0
    leftover = [name for name, pid in pids.items() if alive(pid)]
    assert leftover == [], f"still running after Ctrl-C: {leftover}"
