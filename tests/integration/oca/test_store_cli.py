"""`oca store ...` as an operator runs it."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.storekit import random_file, write_store_config


def oca(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "oca.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def conf(tmp_path):
    path = write_store_config(tmp_path, ssd=("5MB",), hdd=("20MB",))
    shutil.rmtree(tmp_path / "ssd0")  # init creates missing disk directories
    return path


def test_store_lifecycle(conf, tmp_path):
    assert "ssd/0" in oca("store", "init", "--config", conf).stdout
    sha = random_file(tmp_path / "v.mp4", 100_000)
    oca("store", "add", "--config", conf, "t1/v.mp4", tmp_path / "v.mp4", "--tier", "ssd", "--sha256", sha)
    oca("store", "add", "--config", conf, "t1/a.mp4", tmp_path / "v.mp4")
    rows = [json.loads(line) for line in oca("store", "ls", "--config", conf, "--json").stdout.splitlines()]
    assert rows == [
        {"key": "t1/a.mp4", "tier": "hdd", "disk": "hdd/0", "size": 100_000, "sha256": sha, "state": "ready"},
        {"key": "t1/v.mp4", "tier": "ssd", "disk": "ssd/0", "size": 100_000, "sha256": sha, "state": "ready"},
    ]
    assert "hdd/0" in oca("store", "move", "--config", conf, "t1/v.mp4", "--tier", "hdd").stdout
    assert "all files match" in oca("store", "verify", "--config", conf).stdout
    oca("store", "rm", "--config", conf, "t1/a.mp4")
    shutil.rmtree(tmp_path / "index")
    assert "1 keys" in oca("store", "rebuild", "--config", conf).stdout
    assert [json.loads(x)["key"] for x in oca("store", "ls", "--config", conf, "--json").stdout.splitlines()] \
        == ["t1/v.mp4"]
    usage = [json.loads(x) for x in oca("store", "usage", "--config", conf, "--json").stdout.splitlines()]
    assert [(u["id"], u["used"]) for u in usage] == [("ssd/0", 0), ("hdd/0", 100_000)]


def test_verify_reports_corruption_with_exit_1(conf, tmp_path):
    oca("store", "init", "--config", conf)
    random_file(tmp_path / "v", 1000)
    oca("store", "add", "--config", conf, "k", tmp_path / "v")
    data_file = next(p for p in (tmp_path / "hdd0" / "data").rglob("*") if p.is_file() and p.suffix != ".meta")
    data_file.write_bytes(b"x" * 1000)
    proc = oca("store", "verify", "--config", conf, "--json", check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["status"] == "mismatch"
    assert "quarantined" in oca("store", "ls", "--config", conf).stdout


@pytest.mark.parametrize(("args", "code", "message"), [
    (["add", "../etc/passwd", "SRC"], 1, "invalid content key '../etc/passwd': '..' segment"),
    (["add", "k", "/nonexistent/file"], 1, "cannot read source file"),
    (["add", "k", "SRC", "--sha256", "abc"], 1, "sha256 must be 64 lowercase hex digits"),
    (["add", "k", "SRC", "--tier", "ssd", "--sha256", "0" * 64], 1, "sha256 mismatch"),
    (["rm", "nothing"], 1, "not in the store"),
    (["move", "nothing", "--tier", "ssd"], 1, "not in the store"),
])
def test_operator_errors_are_one_clear_line(conf, tmp_path, args, code, message):
    oca("store", "init", "--config", conf)
    random_file(tmp_path / "src", 10)
    args = [str(tmp_path / "src") if a == "SRC" else a for a in args]
    proc = oca("store", args[0], "--config", conf, *args[1:], check=False)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_config_names_file_and_key_and_exits_2(tmp_path):
    conf = tmp_path / "oca.toml"
    conf.write_text("[store]\nindex_path = 'i'\n[store.tiers.ssd]\ndisks = [{path = 'nope', capacity = '1GB'}]\n")
    proc = oca("store", "ls", "--config", conf, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"oca: {conf}: store.tiers.ssd.disks[0].path: directory does not exist: " \
                                  f"{tmp_path / 'nope'}"


def test_help_for_every_action():
    for action in ["init", "add", "ls", "rm", "move", "verify", "rebuild", "usage"]:
        assert "--config" in oca("store", action, "--help").stdout


def test_partials_listed_and_discarded(conf, tmp_path):
    from oca.config import load_toml, read_store_config
    from oca.store import Store

    oca("store", "init", "--config", conf)
    with Store.open(read_store_config(load_toml(conf))) as store, \
            store.stage("t1/v.mp4", size=10, sha256="5" * 64, tier="ssd") as st:
        st.write(b"1234")
    [row] = [json.loads(line) for line in oca("store", "partials", "--config", conf, "--json").stdout.splitlines()]
    assert (row["key"], row["have"], row["size"], row["in_use"]) == ("t1/v.mp4", 4, 10, False)
    assert "discarded" in oca("store", "partials", "--config", conf, "--discard", "t1/v.mp4").stdout
    assert oca("store", "partials", "--config", conf).stdout == ""
    again = oca("store", "partials", "--config", conf, "--discard", "t1/v.mp4", check=False)
    assert again.returncode == 1 and "no partial download" in again.stderr
