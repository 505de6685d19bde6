"""The operator CLI against real databases: db upgrade, titles, renditions, licences, appliances, tokens, status."""

from __future__ import annotations

import json

import pytest

from control_plane.cli import main
from tests.integration.control_plane.builders import sha


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_operator_workflow(database_url, capsys):
    db = ("--database-url", database_url)
    code, out, err = run(capsys, "title", "add", "t1", "--name", "Big Buck Bunny", "--language", "en", *db)
    assert code == 1 and "db upgrade" in err
    code, out, _ = run(capsys, "db", "upgrade", "--json", *db)
    assert code == 0 and json.loads(out)["applied"][0]["number"] == 1
    code, out, _ = run(capsys, "db", "status", *db)
    assert code == 0 and "applied" in out and "PENDING" not in out
    code, out, _ = run(capsys, "title", "add", "t1", "--name", "Big Buck Bunny", "--language", "en",
                       "--year", "2008", "--json", *db)
    assert code == 0 and json.loads(out)["year"] == 2008
    code, _, err = run(capsys, "title", "add", "t1", "--name", "x", "--language", "en", *db)
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "title", "add", "bad id", "--name", "x", "--language", "en", *db)
    assert code == 1 and "(id)" in err
    code, out, _ = run(capsys, "rendition", "add", "t1", "t1/avc-720p.mp4", "--kind", "video", "--codec", "avc1",
                       "--status", "ready", "--size", "1MB", "--sha256", sha("x"), "--json", *db)
    assert code == 0 and json.loads(out)["size"] == 1_000_000
    code, out, _ = run(capsys, "rendition", "list", "t1", *db)
    assert "t1/avc-720p.mp4" in out and "1.0MB" in out
    code, out, _ = run(capsys, "licence", "add", "t1", "DE", "--start", "2027-01-01T00:00:00Z", "--json", *db)
    assert code == 0 and json.loads(out)["region"] == "DE"
    code, out, _ = run(capsys, "licence", "list", "t1", *db)
    assert "DE" in out and "open" in out
    code, out, err = run(capsys, "appliance", "register", "isp1-a", "--kind", "embedded", "--site", "fra",
                         "--region", "eu", "--country", "DE", "--asn", "64500", "--base-url", "http://10.0.0.5:8080",
                         "--ssd", "2TB", "--hdd", "10TB", "--link", "10000000000", *db)
    assert code == 0 and "shown once" in err and len(json.loads(out)["token"]) > 40
    code, out, _ = run(capsys, "token", "create", "steering", "--role", "service", "--json", *db)
    assert code == 0 and json.loads(out)["role"] == "service"
    code, out, _ = run(capsys, "token", "list", "--json", *db)
    assert [t["name"] for t in json.loads(out)] == ["steering"] and "token" not in json.loads(out)[0]
    code, out, _ = run(capsys, "status", *db)
    assert code == 0 and "isp1-a" in out and "OUT" in out and "never" in out and "1 titles" in out
    code, out, _ = run(capsys, "status", "--json", *db)
    status = json.loads(out)
    assert status["appliances"][0]["healthy"] is False and status["appliances"][0]["capacity_bytes"] == 12 * 10**12
    code, out, _ = run(capsys, "title", "show", "t1", "--json", *db)
    shown = json.loads(out)
    assert shown["renditions"][0]["key"] == "t1/avc-720p.mp4" and shown["licenses"][0]["region"] == "DE"
    code, out, _ = run(capsys, "title", "list", *db)
    assert "Big Buck Bunny" in out
    assert run(capsys, "licence", "delete", "t1", "DE", *db)[0] == 0
    assert run(capsys, "appliance", "delete", "isp1-a", *db)[0] == 0
    assert run(capsys, "appliance", "delete", "isp1-a", *db)[0] == 1
    assert run(capsys, "title", "delete", "t1", *db)[0] == 0


def test_config_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "c.toml"
    bad.write_text("[server]\nlisten = 'x'\n")
    code, _, err = run(capsys, "status", "--config", str(bad))
    assert code == 2 and "server.listen" in err and str(bad) in err
    with pytest.raises(SystemExit):
        main(["title"])
