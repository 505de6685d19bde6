"""Request bodies for the control-plane tests."""

from __future__ import annotations

import hashlib


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def title(tid: str = "t1", **extra) -> dict:
    return {"id": tid, "type": "movie", "name": f"Title {tid}", "language": "en", **extra}


def rendition(key: str, size: int = 1000, status: str = "ready", **extra) -> dict:
    return {"key": key, "kind": "video", "codec": "avc1.64001f", "status": status, "size": size,
            "sha256": sha(key), "width": 1280, "height": 720, "bitrate_bps": 3_000_000, **extra}


def appliance(aid: str = "isp1-a", kind: str = "embedded", site: str = "fra-isp1", region: str = "eu-central",
              country: str = "DE", ssd: int = 10_000, hdd: int = 100_000, port: int = 8080) -> dict:
    return {"id": aid, "kind": kind, "site": site, "region": region, "country": country, "asn": 64500,
            "base_url": f"http://10.0.0.5:{port}", "capacity": {"ssd": ssd, "hdd": hdd},
            "link_capacity_bps": 10_000_000_000}


def item(key: str, size: int = 1000, tier: str = "ssd") -> dict:
    return {"key": key, "size": size, "sha256": sha(key), "tier": tier}


def report(aid: str = "isp1-a", inventory: dict | None = None, status: str = "ok", ratio: float = 0.1,
           prefixes: dict | None = None) -> dict:
    body = {
        "version": 1, "appliance_id": aid, "sent_at": "2027-01-15T08:00:00Z",
        "health": {"status": status, "disks": [{"id": "ssd/0", "tier": "ssd", "state": "ok",
                                                "capacity_bytes": 1000, "used_bytes": 10}], "errors": []},
        "load": {"tx_bps": 1_200_000, "link_capacity_bps": 10_000_000_000, "ratio": ratio, "active_connections": 3},
        "prefixes": prefixes or {"ipv4": ["203.0.113.0/24"], "ipv6": ["2001:db8::/32"], "source": "kernel-table:100"},
    }
    if inventory is not None:
        body["inventory"] = inventory
    return body


def full(generation: int, *items: dict) -> dict:
    return {"kind": "full", "generation": generation, "items": list(items)}


def delta(base: int, generation: int, added=(), removed=()) -> dict:
    return {"kind": "delta", "base_generation": base, "generation": generation, "added": list(added),
            "removed": list(removed)}
