"""`oca-control ingest` end to end: a real subprocess, a SQLite data dir, real ffmpeg."""

import json
import subprocess
import sys
from pathlib import Path

from .samples import make_master

CLI = str(Path(sys.executable).with_name("oca-control"))


def run(*args, timeout=180):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_ingest_command_publishes_and_reports(tmp_path):
    master = make_master(tmp_path / "m.mp4", seconds=4, size="640x360")
    data = tmp_path / "data"
    assert run("db", "upgrade", "--data-dir", str(data)).returncode == 0
    done = run("ingest", "t1", str(master), "--data-dir", str(data), "--name", "CLI", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["job"]["state"] == "done" and "done" in done.stderr  # the progress line
    for o in status["renditions"]:
        assert (data / "content" / o["key"]).stat().st_size == o["size"]
    show = json.loads(run("title", "show", "t1", "--data-dir", str(data), "--json").stdout)
    assert show["name"] == "CLI" and {r["status"] for r in show["renditions"]} == {"ready"}


def test_ingest_command_fails_clearly_on_non_video(tmp_path):
    text = tmp_path / "x.mp4"
    text.write_text("hello")
    data = tmp_path / "data"
    run("db", "upgrade", "--data-dir", str(data))
    failed = run("ingest", "t2", str(text), "--data-dir", str(data))
    assert failed.returncode == 1 and "not a media file" in failed.stderr
