"""`oca-fill` as a process: exit codes, metrics textfile, and SIGKILL at random points then a clean re-run."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

from oca.store import Store
from tests.integration.fill.conftest import (
    REPO,
    cli_env,
    item,
    make_files,
    manifest_doc,
    origin,
    put_files,
    run_cli,
    wait_for,
    write_fill_config,
)


async def test_help_and_config_errors(tmp_path):
    result = await run_cli("--help")
    assert result.returncode == 0 and "run" in result.stdout and "plan" in result.stdout
    result = await run_cli("run", "--help")
    assert result.returncode == 0 and "--once" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('store_config = "/nonexistent/oca.toml"\n')
    result = await run_cli("run", "--config", str(bad), "--once")
    assert result.returncode == 2
    assert "bad.toml: store_config: file does not exist" in result.stderr
    cfg = write_fill_config(tmp_path, "http://127.0.0.1:9", extra="[fetch2]\n")
    result = await run_cli("run", "--config", str(cfg), "--once")
    assert result.returncode == 2 and "fetch2: unknown key" in result.stderr


async def test_once_plan_and_unreachable_exit_codes(tmp_path, edge_factory, manifest_server):
    files = make_files(3, 100_000, seed=21)
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)]) for i, f in enumerate(files)])
    cfg = write_fill_config(tmp_path, manifest_server.url)

    result = await run_cli("plan", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("fetch  ") == 3 and "3 downloads" in result.stdout

    result = await run_cli("run", "--config", str(cfg), "--once")
    assert result.returncode == 0, result.stderr
    assert '"msg": "fill run for manifest generation 1: complete' in result.stderr      # JSON logs off a TTY
    prom = (tmp_path / "fill.prom").read_text()
    assert 'oca_fill_items_total{outcome="done"} 3.0' in prom
    assert "oca_fill_last_run_success 1.0" in prom

    manifest_server.mode = "down"
    result = await run_cli("run", "--config", str(cfg), "--once")
    assert result.returncode == 3 and "control plane unreachable" in result.stderr
    prom = (tmp_path / "fill.prom").read_text()
    assert "oca_fill_last_run_success 0.0" in prom
    assert 'oca_fill_manifest_fetches_total{outcome="unreachable"} 1.0' in prom


def _progress_bytes(root) -> int:
    """Bytes on the appliance's disks: staging partials plus published files (what a fill has written)."""
    total = 0
    for disk in ("ssd0", "hdd0"):
        for sub in ("staging", "data"):
            for dirpath, _, names in os.walk(root / "appliance" / disk / sub):
                for n in names:
                    if not n.endswith((".json", ".meta", ".tmp")):
                        try:
                            total += os.path.getsize(os.path.join(dirpath, n))
                        except OSError:
                            pass
    return total


async def test_sigkill_at_random_points_then_rerun_completes(tmp_path, edge_factory, manifest_server):
    from fill.config import read_fill_config

    files = make_files(10, 1_500_000, seed=23)                     # 15 MB
    put_files(tmp_path / "origin", files)
    org = edge_factory(tmp_path / "origin")
    cfg = write_fill_config(tmp_path, manifest_server.url, rate="48Mbit", ssd=("10MB",), hdd=("30MB",))
    config = read_fill_config(cfg)
    # something held that the manifest drops, so a kill can also land among the evictions
    with Store.open(config.store, cleanup=True) as store:
        extra = make_files(2, 300_000, prefix="old", seed=24)
        for f in extra:
            (tmp_path / "src").write_bytes(f.data)
            store.add_file(f.key, tmp_path / "src", tier="hdd")
    manifest_server.doc = manifest_doc([item(i + 1, f, [origin(org.url, f)], tier="ssd" if i < 3 else "hdd")
                                        for i, f in enumerate(files)])
    total = sum(f.size for f in files)
    rng = random.Random(int(os.environ.get("FILL_KILL_SEED", "7")))
    thresholds = sorted(rng.uniform(0.0, 0.9) * total for _ in range(4))
    thresholds[0] = 0                                               # one kill right after start
    kills = 0
    for threshold in thresholds:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fill.cli", "run", "--config", str(cfg), "--once", cwd=REPO, env=cli_env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await wait_for(lambda t=threshold, p=proc: _progress_bytes(tmp_path) >= t or p.returncode is not None,
                           timeout=60, what=f"fill progress past {threshold:.0f} bytes")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
        # After each kill: whatever the index shows is complete and verified (nothing partial is visible).
        with Store.open(config.store) as store:
            for e in store.entries():
                assert e.state == "ready"
                assert store.path_of(e).stat().st_size == e.size
            assert all(r.status == "ok" for r in store.verify())
    assert kills >= 3

    result = await run_cli("run", "--config", str(cfg), "--once")
    assert result.returncode == 0, result.stderr[-3000:]
    with Store.open(config.store) as store:
        held = {e.key: e for e in store.entries()}
        assert sorted(held) == sorted(f.key for f in files)
        for f in files:
            assert (held[f.key].size, held[f.key].sha256) == (f.size, f.sha256)
        assert all(r.status == "ok" for r in store.verify())
    # nothing half-done is left on the disks: no partials, no orphans
    for disk in ("ssd0", "hdd0"):
        assert [p.name for p in (tmp_path / "appliance" / disk / "staging").iterdir()] == []
        data_files = [p for p in (tmp_path / "appliance" / disk / "data").rglob("*") if p.is_file()
                      and not p.name.endswith(".meta")]
        assert len(data_files) == sum(1 for e in held.values() if e.disk == f"{disk[:3]}/0")
