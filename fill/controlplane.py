"""Getting this appliance's fill manifest from the control plane, and keeping the last good one.

``GET /api/v1/appliances/{id}/fill-manifest`` with the appliance's bearer token and, when we hold a
manifest, ``If-None-Match`` with its ETag (docs/contracts.md). The answer is one closed outcome:

* `Fresh` — a new, valid manifest (saved as the last good one before it is used);
* `NotModified` — 304: the last good manifest is still current;
* `Unreachable` — connection error, timeout or 5xx: keep the store as it is and try again later;
* `Rejected` — the answer is not something we can act on (4xx, garbage JSON, a manifest for another
  appliance): logged loudly, the last good manifest is kept, and nothing is evicted on its strength.

The last good manifest lives in the state directory (raw JSON + ETag), written atomically, so a
restarted agent can send ``If-None-Match`` and resume an interrupted fill without a download.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from fill.config import ControlPlaneConfig
from fill.manifest import Manifest, ManifestError, parse_manifest

log = logging.getLogger("oca.fill.controlplane")
MAX_MANIFEST_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Fresh:
    manifest: Manifest
    etag: str | None


@dataclass(frozen=True)
class NotModified:
    manifest: Manifest


@dataclass(frozen=True)
class Unreachable:
    reason: str


@dataclass(frozen=True)
class Rejected:
    reason: str


ManifestFetch = Fresh | NotModified | Unreachable | Rejected


class ManifestCache:
    """The last good manifest on disk: ``<state_dir>/fill-manifest.json`` holding {etag, document}."""

    def __init__(self, state_dir: Path, appliance_id: str) -> None:
        self.path = state_dir / "fill-manifest.json"
        self.appliance_id = appliance_id

    def load(self) -> tuple[Manifest, str | None] | None:
        try:
            data = json.loads(self.path.read_bytes())
            return parse_manifest(data["document"], appliance_id=self.appliance_id), data.get("etag")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring the cached manifest %s: %s", self.path, e)
            return None

    def save(self, raw: str, etag: str | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump({"etag": etag, "document": raw}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)


async def fetch_manifest(session: aiohttp.ClientSession, config: ControlPlaneConfig,
                         cache: ManifestCache) -> ManifestFetch:
    """Ask the control plane for the manifest; save it if it is new and valid."""
    cached = cache.load()
    headers = {"Authorization": f"Bearer {config.token}", "Accept": "application/json"}
    if cached is not None and cached[1]:
        headers["If-None-Match"] = cached[1]
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    try:
        async with session.get(config.manifest_url, headers=headers, timeout=timeout) as resp:
            if resp.status == 304 and cached is not None:
                return NotModified(cached[0])
            if resp.status >= 500 or resp.status == 429:
                return Unreachable(f"control plane answered {resp.status}")
            if resp.status != 200:
                body = (await resp.content.read(500)).decode("utf-8", "replace")
                return Rejected(f"control plane answered {resp.status}: {body}")
            raw = await resp.content.read(MAX_MANIFEST_BYTES + 1)
            if len(raw) > MAX_MANIFEST_BYTES:
                return Rejected(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
            etag = resp.headers.get("ETag")
    except (aiohttp.ClientError, TimeoutError) as e:
        return Unreachable(f"{type(e).__name__}: {e}")
    try:
        text = raw.decode("utf-8")
        manifest = parse_manifest(text, appliance_id=config.appliance_id)
    except UnicodeDecodeError:
        return Rejected("manifest is not UTF-8")
    except ManifestError as e:
        return Rejected(str(e))
    cache.save(text, etag)
    return Fresh(manifest, etag)
