"""The demo's steps, in order. Each is idempotent, so a second `make run` reuses what is there."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

import aiohttp

from demo.layout import COUNTRY, ISP_ASN, LOOPBACK_V4, REGION, TITLE_ID, Appliance, Layout
from demo.supervisor import ProcessGroup, wait_http

PY = sys.executable


class DemoError(Exception):
    """A step failed; the message says which and why."""


def _cli(module: str) -> list[str]:
    return [PY, "-m", module]


OCA, CONTROL, STEERING, FILL = _cli("oca.cli"), _cli("control_plane.cli"), _cli("steering.cli"), _cli("fill.cli")


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_static_files(layout: Layout, *, secret: str) -> None:
    """Configs, key ring, operator token and GeoIP databases (secrets are kept across runs)."""
    if not layout.key_ring.exists():
        _write_if_changed(layout.key_ring, layout.key_ring_toml(secret))
        layout.key_ring.chmod(0o600)
    if not layout.operator_token.exists():
        _write_if_changed(layout.operator_token, hashlib.sha256(secret.encode() + b"operator").hexdigest() + "\n")
        layout.operator_token.chmod(0o600)
    _write_if_changed(layout.control_dir / "oca-control.toml", layout.control_toml())
    _write_if_changed(layout.root / "oca-steering.toml", layout.steering_toml())
    layout.origin_dir.mkdir(parents=True, exist_ok=True)
    for a in layout.appliances:
        for sub in ("ssd0", "hdd0"):
            (layout.appliance_dir(a) / sub).mkdir(parents=True, exist_ok=True)
        _write_if_changed(layout.oca_config(a), layout.oca_toml(a))
        _write_if_changed(layout.fill_config(a), layout.fill_toml(a))
    write_geoip(layout.geo_dir)


def write_geoip(geo_dir: Path) -> None:
    """MaxMind-format databases that place loopback clients in the demo ISP's AS and country."""
    if (geo_dir / "asn.mmdb").exists() and (geo_dir / "country.mmdb").exists():
        return
    from mmdb_writer import MMDBWriter  # the demo's only use of it; production uses real MaxMind files
    from netaddr import IPSet

    geo_dir.mkdir(parents=True, exist_ok=True)
    nets = IPSet([LOOPBACK_V4, "::1/128"])
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    writer.insert_network(nets, {"autonomous_system_number": ISP_ASN,
                                 "autonomous_system_organization": "Demo ISP"})
    writer.to_db_file(str(geo_dir / "asn.mmdb"))
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(nets, {"country": {"iso_code": COUNTRY, "names": {"en": COUNTRY}}})
    writer.to_db_file(str(geo_dir / "country.mmdb"))


async def _run(group: ProcessGroup, name: str, argv: list[str], what: str) -> None:
    code = await group.run(name, argv)
    if code != 0:
        raise DemoError(f"{what} failed (exit code {code}); see the lines prefixed '{name}' above")


async def _capture(argv: list[str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def _control_args(layout: Layout) -> list[str]:
    return ["--config", str(layout.control_dir / "oca-control.toml")]


async def start_control_plane(layout: Layout, group: ProcessGroup) -> None:
    group.say("demo", f"starting the control plane on {layout.control_url} (SQLite in {layout.control_dir})")
    await group.start("control", [*CONTROL, "serve", *_control_args(layout)])
    await wait_http(f"{layout.control_url}/readyz", group=group, name="control")


async def register_fleet(layout: Layout, group: ProcessGroup) -> None:
    """Register the origin and both appliances; keep each appliance's token in its directory."""
    for a in (layout.origin, *layout.appliances):
        token_file = layout.token_file(a) if a.kind != "origin" else layout.root / "origin.token"
        if token_file.exists():
            continue
        argv = [*CONTROL, "appliance", "register", a.id, "--kind", a.kind, "--site", a.site, "--region", REGION,
                "--country", COUNTRY, "--asn", str(a.asn), "--base-url", a.base_url, "--ssd", "60MB",
                "--hdd", "400MB", "--link", "1000000000", *_control_args(layout), "--json"]
        code, out, err = await _capture(argv)
        if code != 0 and "already registered" in err:
            code, out, err = await _capture([*CONTROL, "appliance", "rotate-token", a.id,
                                             *_control_args(layout), "--json"])
        if code != 0:
            raise DemoError(f"registering {a.id} failed: {err.strip()}")
        token = json.loads(out)["token"]
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        group.say("demo", f"registered {a.kind} appliance {a.id} at {a.base_url}")


async def start_edges(layout: Layout, group: ProcessGroup) -> None:
    o = layout.origin
    group.say("demo", f"starting the origin (open mode over {layout.origin_dir}) on {o.base_url}")
    # --rescan: a title ingested while the demo runs (`oca-control ingest`) is served without a restart.
    await group.start("origin", [*OCA, "serve", "--root", str(layout.origin_dir), "--listen", f"127.0.0.1:{o.port}",
                                 "--admin", f"127.0.0.1:{o.admin_port}", "--workers", "1", "--rescan", "5s"])
    for a in layout.appliances:
        await _run(group, a.id, [*OCA, "store", "init", "--config", str(layout.oca_config(a))], f"store init {a.id}")
        group.say("demo", f"starting {a.kind} appliance {a.id} on {a.base_url}")
        await group.start(a.id, [*OCA, "serve", "--config", str(layout.oca_config(a))])
    for a in (o, *layout.appliances):
        await wait_http(f"http://127.0.0.1:{a.admin_port}/healthz", group=group, name=a.id if a is not o else "origin")


async def start_steering(layout: Layout, group: ProcessGroup) -> None:
    group.say("demo", f"starting steering on {layout.steering_url}")
    await group.start("steering", [*STEERING, "serve", "--config", str(layout.root / "oca-steering.toml")])
    await wait_http(f"{layout.steering_url}/healthz", group=group, name="steering")


async def start_reporters(layout: Layout, group: ProcessGroup) -> None:
    for a in layout.appliances:
        name = f"report-{a.id.split('-')[0]}"
        if name not in group.children:
            await group.start(name, [*OCA, "report", "--config", str(layout.oca_config(a))])


def ready_document(layout: Layout) -> dict[str, object]:
    c = layout.control_url
    return {
        "player": f"{c}/player/?title={TITLE_ID}",
        "dash": f"{c}/api/v1/playback/{TITLE_ID}/manifest?format=dash",
        "hls": f"{c}/api/v1/playback/{TITLE_ID}/manifest?format=hls",
        "steering": f"{layout.steering_url}/api/v1/steer?ip=127.0.0.1&title={TITLE_ID}",
        "control_plane": c,
        "title": TITLE_ID,
        "appliances": {a.id: {"kind": a.kind, "base_url": a.base_url, "access_log": str(layout.access_log(a))}
                       for a in (layout.origin, *layout.appliances)},
        "metrics": {
            "control": f"{c}/metrics",
            "steering": f"{layout.steering_url}/metrics",
            **{a.id: f"http://127.0.0.1:{a.admin_port}/metrics" for a in (layout.origin, *layout.appliances)},
        },
        "state_dir": str(layout.root),
    }


async def _get_json(url: str, token: str | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, s.get(url, headers=headers) as r:
        body = await r.json(content_type=None) if r.status != 304 else None
        return r.status, body


async def _post_json(url: str, body: object) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, s.post(url, json=body) as r:
        await r.read()
        return r.status


async def wait_until(check, what: str, *, timeout: float = 60.0, interval: float = 0.5) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def appliance_label(a: Appliance) -> str:
    return f"{a.kind} appliance {a.id}"


async def license_and_popularise(layout: Layout, group: ProcessGroup) -> None:
    """License the title where the demo's clients are, and play it a few times so it ranks."""
    code, out, err = await _capture([*CONTROL, "licence", "list", TITLE_ID, *_control_args(layout), "--json"])
    if code != 0 or COUNTRY not in out:
        await _run(group, "control", [*CONTROL, "licence", "add", TITLE_ID, COUNTRY, "--start", "2020-01-01T00:00:00Z",
                                      *_control_args(layout)], f"licensing {TITLE_ID} in {COUNTRY}")
    group.say("demo", f"{TITLE_ID} is licensed in {COUNTRY}; sending synthetic playback events so it is popular")
    for n in range(5):
        status = await _post_json(f"{layout.control_url}/api/v1/playback/{TITLE_ID}/event",
                                  {"type": "play", "positionMs": n * 1000})
        if status >= 300:
            raise DemoError(f"playback event answered HTTP {status}")


async def _held_keys(layout: Layout, appliance_id: str) -> set[str]:
    status, snapshot = await _get_json(f"{layout.control_url}/api/v1/fleet/snapshot",
                                       layout.operator_token.read_text().strip())
    if status != 200 or not isinstance(snapshot, dict):
        return set()
    return next((set(a["keys"]) for a in snapshot["appliances"] if a["id"] == appliance_id), set())


async def _manifest_keys(layout: Layout, a: Appliance) -> set[str]:
    status, body = await _get_json(f"{layout.control_url}/api/v1/appliances/{a.id}/fill-manifest",
                                   layout.token_file(a).read_text().strip())
    return {i["key"] for i in body["items"]} if status == 200 and isinstance(body, dict) else set()


async def fill_appliances(layout: Layout, group: ProcessGroup) -> None:
    """One fill run on each appliance: the exchange point first (from the origin), then the embedded
    one, which finds the exchange point in its manifest as a peer source and fills from it."""
    for a in layout.appliances:
        wanted = await wait_until(lambda a=a: _manifest_keys(layout, a), f"the fill manifest of {a.id} to list "
                                  f"{TITLE_ID} (popularity is flushed every 0.5 s)", timeout=30)
        group.say("demo", f"filling {appliance_label(a)}: {len(wanted)} files")
        argv = [*FILL, "run", "--once", "--config", str(layout.fill_config(a))]
        await _run(group, f"fill-{a.id.split('-')[0]}", argv, f"the fill of {a.id}")
        await wait_until(lambda a=a, w=wanted: _holds(layout, a.id, w), f"{a.id}'s report to show what it holds",
                         timeout=30)


async def _holds(layout: Layout, appliance_id: str, wanted: set[str]) -> bool:
    return wanted <= await _held_keys(layout, appliance_id)


async def wait_for_steering(layout: Layout, group: ProcessGroup) -> None:
    async def embedded_first() -> bool:
        status, body = await _get_json(f"{layout.steering_url}/api/v1/steer?ip=127.0.0.1&title={TITLE_ID}")
        return status == 200 and bool(body["candidates"]) and \
            body["candidates"][0]["appliance_id"] == layout.embedded.id  # type: ignore[index]
    await wait_until(embedded_first, "steering to send 127.0.0.1 to the embedded appliance", timeout=30)
    group.say("demo", f"steering sends 127.0.0.1 to {layout.embedded.id} first, then {layout.ixp.id}, then origin")


def write_pids(layout: Layout, group: ProcessGroup) -> None:
    """run/pids.json: each daemon's pid (its process group id too), for operators and the e2e test."""
    pids = {name: c.proc.pid for name, c in group.children.items() if c.proc.returncode is None}
    (layout.root / "pids.json").write_text(json.dumps(pids, indent=1) + "\n")


async def make_master(layout: Layout, group: ProcessGroup, duration: float) -> str:
    """The sample title: ffmpeg's testsrc2 pattern with a sine tone; returns its SHA-256."""
    if not layout.master.exists():
        layout.master.parent.mkdir(parents=True, exist_ok=True)
        tmp = layout.master.with_suffix(".tmp.mp4")
        group.say("demo", f"generating a {duration:.0f} s sample title with ffmpeg (testsrc2 + sine)")
        await _run(group, "ffmpeg", ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                                     "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={duration}",
                                     "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}",
                                     "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                                     "-c:a", "aac", "-b:a", "128k", "-shortest", str(tmp)], "generating the sample")
        tmp.rename(layout.master)
    return hashlib.sha256(layout.master.read_bytes()).hexdigest()


def _operator(layout: Layout) -> dict[str, str]:
    return {"Authorization": f"Bearer {layout.operator_token.read_text().strip()}"}


async def ingest_sample(layout: Layout, group: ProcessGroup, *, duration: float) -> None:
    """Create the title and ingest the sample through the API, unless this master is already ingested."""
    sha = await make_master(layout, group, duration)
    marker = layout.root / "ingested.json"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=_operator(layout)) as s:
        async with s.get(f"{layout.control_url}/api/v1/titles/{TITLE_ID}") as r:
            exists = r.status == 200
        if not exists:
            body = {"id": TITLE_ID, "type": "movie", "name": "OCA demo (testsrc2 + sine)", "language": "en",
                    "duration_s": int(duration), "synopsis": "A generated test pattern, ingested by make run."}
            async with s.post(f"{layout.control_url}/api/v1/titles", json=body) as r:
                if r.status != 201:
                    raise DemoError(f"creating the title answered HTTP {r.status}: {await r.text()}")
        status = await _encoding_status(s, layout)
        done = status is not None and status["job"]["state"] == "done"
        if done and marker.exists() and json.loads(marker.read_text()).get("sha256") == sha:
            group.say("demo", f"{TITLE_ID} is already ingested from this sample: no re-encode")
            return
        group.say("demo", f"ingesting {layout.master} as {TITLE_ID} (per-title ladder, H.264 + AAC, fMP4)")
        async with s.post(f"{layout.control_url}/api/v1/content/ingest",
                           json={"titleId": TITLE_ID, "masterFileUrl": layout.master.resolve().as_uri()}) as r:
            if r.status != 202:
                raise DemoError(f"ingest answered HTTP {r.status}: {await r.text()}")
        status = await _follow_ingest(s, layout, group)
    ready = [o["key"] for o in status["renditions"] if o["state"] == "ready"]
    group.say("ingest", f"done: {len(ready)} renditions: {', '.join(ready)}")
    marker.write_text(json.dumps({"sha256": sha, "renditions": ready}) + "\n")


async def _encoding_status(s: aiohttp.ClientSession, layout: Layout) -> dict | None:
    async with s.get(f"{layout.control_url}/api/v1/content/{TITLE_ID}/encoding-status") as r:
        return await r.json() if r.status == 200 else None


async def _follow_ingest(s: aiohttp.ClientSession, layout: Layout, group: ProcessGroup) -> dict:
    shown = ""
    while True:
        status = await _encoding_status(s, layout)
        if status is not None:
            job = status["job"]
            bar = "#" * int(job["percent"] / 5)
            line = f"[{bar:<20}] {job['percent']:5.1f}%  {job['stage'] or job['state']}  " + "  ".join(
                f"{o['name'].rsplit('.', 1)[0]} {o['percent']:.0f}%" for o in status["renditions"])
            if line != shown:
                group.say("ingest", line)
                shown = line
            if job["state"] == "done":
                return status
            if job["state"] in ("failed", "cancelled"):
                raise DemoError(f"ingest {job['state']}: {job['error']}")
        await asyncio.sleep(1.0)
