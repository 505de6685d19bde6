"""The fill manifest: what the control plane wants this appliance to hold, parsed and validated.

The document is the one in docs/contracts.md ("Fill manifest"). Parsing is strict about everything the
agent acts on: a wrong type, a bad content key, a malformed SHA-256, an unknown tier or source kind, a
duplicate key or ranks out of order reject the whole document with a `ManifestError` naming the JSON path.
A rejected document never replaces the last good one (the caller keeps using what it had). Fields the
agent does not use are ignored, so the control plane can add fields without a version bump.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oca.config import TIERS
from oca.contentkey import InvalidKey, validate_key

MANIFEST_VERSION = 1
SOURCE_KINDS = ("peer", "origin")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """The document is not a fill manifest we can act on; `where` is the JSON path of the problem."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"fill manifest: {where}: {reason}" if where else f"fill manifest: {reason}")
        self.where, self.reason = where, reason


@dataclass(frozen=True)
class Source:
    kind: str                   # "peer" | "origin"
    url: str                    # complete, already signed
    appliance_id: str | None    # peers only


@dataclass(frozen=True)
class Item:
    rank: int
    key: str
    title_id: str | None
    size: int
    sha256: str                 # 64 lowercase hex
    tier: str                   # target tier: "ssd" | "hdd"
    sources: tuple[Source, ...]  # in the order to try


@dataclass(frozen=True)
class Manifest:
    appliance_id: str
    generation: int
    generated_at: str
    items: tuple[Item, ...]     # rank order

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.items)


def parse_manifest(raw: bytes | str, *, appliance_id: str | None = None) -> Manifest:
    """Parse a JSON document into a `Manifest`, or raise `ManifestError`.

    `appliance_id`, when given, must match the document's (a manifest meant for another box is garbage).
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError("", f"not JSON: {e}") from None
    return manifest_from_dict(data, appliance_id=appliance_id)


def manifest_from_dict(data: Any, *, appliance_id: str | None = None) -> Manifest:
    doc = _Obj(data, "$")
    version = doc.int("version")
    if version != MANIFEST_VERSION:
        raise ManifestError("$.version", f"unsupported version {version} (expected {MANIFEST_VERSION})")
    aid = doc.str("appliance_id")
    if appliance_id is not None and aid != appliance_id:
        raise ManifestError("$.appliance_id", f"manifest is for {aid!r}, this appliance is {appliance_id!r}")
    generation = doc.int("generation", minimum=0)
    generated_at = doc.str("generated_at")
    raw_items = doc.list("items")
    items: list[Item] = []
    seen: set[str] = set()
    for i, raw_item in enumerate(raw_items):
        item = _item(_Obj(raw_item, f"$.items[{i}]"))
        if item.key in seen:
            raise ManifestError(f"$.items[{i}].key", f"duplicate key {item.key!r}")
        if items and item.rank <= items[-1].rank:
            raise ManifestError(f"$.items[{i}].rank", f"rank {item.rank} is not after {items[-1].rank}")
        seen.add(item.key)
        items.append(item)
    return Manifest(aid, generation, generated_at, tuple(items))


def _item(obj: _Obj) -> Item:
    rank = obj.int("rank", minimum=1)
    key = obj.str("key")
    try:
        validate_key(key)
    except InvalidKey as e:
        raise ManifestError(obj.at("key"), e.reason) from None
    title_id = obj.optional_str("title_id")
    size = obj.int("size", minimum=0)
    sha256 = obj.str("sha256")
    if not _SHA256.fullmatch(sha256):
        raise ManifestError(obj.at("sha256"), "expected 64 lowercase hex digits")
    tier = obj.str("tier")
    if tier not in TIERS:
        raise ManifestError(obj.at("tier"), f"unknown tier {tier!r} (expected one of {', '.join(TIERS)})")
    raw_sources = obj.list("sources")
    if not raw_sources:
        raise ManifestError(obj.at("sources"), "an item needs at least one source")
    sources = tuple(_source(_Obj(s, f"{obj.at('sources')}[{j}]")) for j, s in enumerate(raw_sources))
    return Item(rank, key, title_id, size, sha256, tier, sources)


def _source(obj: _Obj) -> Source:
    kind = obj.str("kind")
    if kind not in SOURCE_KINDS:
        raise ManifestError(obj.at("kind"), f"unknown source kind {kind!r} (expected peer or origin)")
    url = obj.str("url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError(obj.at("url"), f"expected an absolute http(s) URL, got {url!r}")
    appliance_id = obj.optional_str("appliance_id")
    return Source(kind, url, appliance_id)


class _Obj:
    """A JSON object being read, knowing its path for error messages."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ManifestError(path, f"expected an object, got {_jtype(data)}")
        self.data, self.path = data, path

    def at(self, name: str) -> str:
        return f"{self.path}.{name}"

    def _get(self, name: str) -> Any:
        if name not in self.data:
            raise ManifestError(self.at(name), "required field is missing")
        return self.data[name]

    def int(self, name: str, *, minimum: int | None = None) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(self.at(name), f"expected an integer, got {_jtype(value)}")
        if minimum is not None and value < minimum:
            raise ManifestError(self.at(name), f"must be at least {minimum}, got {value}")
        return value

    def str(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value:
            raise ManifestError(self.at(name), f"expected a non-empty string, got {_jtype(value)}")
        return value

    def optional_str(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ManifestError(self.at(name), f"expected a string or null, got {_jtype(value)}")
        return value

    def list(self, name: str) -> list[Any]:
        value = self._get(name)
        if not isinstance(value, list):
            raise ManifestError(self.at(name), f"expected an array, got {_jtype(value)}")
        return value


def _jtype(value: Any) -> str:
    if value is None:
        return "null"
    if value == "":
        return "an empty string"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
