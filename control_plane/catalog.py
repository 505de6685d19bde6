"""Catalog records: titles and their renditions (one row per file), parsed from JSON bodies.

Pure: turns request bodies into frozen records or raises a 422 naming the field. The repository
(`db/catalog.py`) stores them; `to_json` is the API's representation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from control_plane import validation as v
from control_plane.errors import invalid
from oca.contentkey import InvalidKey, validate_key

TITLE_TYPES = ("movie", "series", "episode", "documentary", "special", "trailer")
RENDITION_KINDS = ("video", "audio", "subtitle")
RENDITION_STATUSES = ("encoding", "ready", "failed")


@dataclass(frozen=True)
class Title:
    id: str
    type: str
    name: str
    language: str
    year: int | None = None
    maturity_rating: str | None = None
    duration_s: int | None = None
    synopsis: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Rendition:
    key: str
    title_id: str
    kind: str
    codec: str
    status: str
    width: int | None = None
    height: int | None = None
    bitrate_bps: int | None = None
    language: str | None = None
    size: int | None = None
    sha256: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


_TITLE_FIELDS = {f.name for f in fields(Title)}
_RENDITION_FIELDS = {f.name for f in fields(Rendition)}


def _reject_unknown(body: dict, allowed: set[str]) -> None:
    for name in body:
        if name not in allowed:
            raise invalid(name, "unknown field", "unknown_field")


def parse_title(body: dict, *, title_id: str | None = None) -> Title:
    """A full title from a JSON body. `title_id` from the URL (PUT) overrides a missing body id."""
    v.obj(body)
    _reject_unknown(body, _TITLE_FIELDS)
    ident = v.identifier(body, "id", title_id)
    if title_id is not None and ident != title_id:
        raise invalid("id", f"the body says {ident!r} but the URL says {title_id!r}")
    return Title(
        id=ident,
        type=v.string(body, "type", choices=TITLE_TYPES),
        name=v.string(body, "name", max_len=500),
        language=v.string(body, "language", max_len=35),
        year=v.integer(body, "year", None, lo=1870, hi=3000),
        maturity_rating=v.string(body, "maturity_rating", None, max_len=16),
        duration_s=v.integer(body, "duration_s", None, lo=0, hi=10**7),
        synopsis=v.string(body, "synopsis", None, max_len=10000),
    )


def patch_title(current: Title, body: dict) -> Title:
    """`current` with the fields present in `body` replaced (PATCH); the id cannot change."""
    v.obj(body)
    if "id" in body and body["id"] != current.id:
        raise invalid("id", "a title's id cannot change")
    merged = current.to_json() | body
    return parse_title(merged, title_id=current.id)


def parse_rendition(title_id: str, body: dict) -> Rendition:
    """A rendition of `title_id` from a JSON body. A `ready` file must have its size and SHA-256."""
    v.obj(body)
    _reject_unknown(body, _RENDITION_FIELDS)
    key = v.string(body, "key", max_len=512)
    try:
        validate_key(key)
    except InvalidKey as e:
        raise invalid("key", f"not a content key: {e.reason}") from None
    if "title_id" in body and body["title_id"] != title_id:
        raise invalid("title_id", f"the body says {body['title_id']!r} but the URL says {title_id!r}")
    rendition = Rendition(
        key=key, title_id=title_id,
        kind=v.string(body, "kind", choices=RENDITION_KINDS),
        codec=v.string(body, "codec", max_len=64),
        status=v.string(body, "status", "encoding", choices=RENDITION_STATUSES),
        width=v.integer(body, "width", None, lo=1, hi=100_000),
        height=v.integer(body, "height", None, lo=1, hi=100_000),
        bitrate_bps=v.integer(body, "bitrate_bps", None, lo=1),
        language=v.string(body, "language", None, max_len=35),
        size=v.integer(body, "size", None, lo=0),
        sha256=v.sha256(body, "sha256", None),
    )
    if rendition.status == "ready":
        for name in ("size", "sha256"):
            if getattr(rendition, name) is None:
                raise invalid(name, "a ready rendition needs its size and sha256", "missing_field")
    return rendition


def patch_rendition(current: Rendition, body: dict) -> Rendition:
    v.obj(body)
    if "key" in body and body["key"] != current.key:
        raise invalid("key", "a rendition's key cannot change")
    return parse_rendition(current.title_id, current.to_json() | body)

