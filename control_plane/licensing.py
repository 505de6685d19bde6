"""Regional licensing: is title T playable in country C at time t? Pure functions, no I/O.

A licence grants one title in one region (ISO 3166-1 alpha-2 country) over the half-open window
``[start, end)``: playable AT the start instant, no longer AT the end instant; ``end = None`` is
open-ended. Times are Unix seconds, or timezone-aware datetimes (any offset: instants are
compared, not wall clocks). There is at most one licence per (title, region).

The playback-manifest route answers 451 (RFC 7725, Unavailable For Legal Reasons) for anything
but `Playable`; the fill planner keeps only titles licensed for the whole coming fill window, so a
title whose licence ends is dropped from the region's manifests and evicted by the fill agents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from control_plane import validation as v
from control_plane.errors import invalid


@dataclass(frozen=True)
class Licence:
    title_id: str
    region: str
    start: float
    end: float | None
    exclusive: bool = False

    def covers(self, at: float) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def to_json(self) -> dict:
        return {"title_id": self.title_id, "region": self.region, "start": v.format_time(self.start),
                "end": v.format_time(self.end), "exclusive": self.exclusive}


# -- closed outcomes of `playability` -----------------------------------------------------------

@dataclass(frozen=True)
class Playable:
    licence: Licence


@dataclass(frozen=True)
class NotLicensed:
    """No licence for this title in this country (or the country is unknown)."""


@dataclass(frozen=True)
class NotYet:
    starts_at: float


@dataclass(frozen=True)
class Expired:
    ended_at: float


Playability = Playable | NotLicensed | NotYet | Expired


def _seconds(at: float | datetime) -> float:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous: give it a tzinfo")
        return at.timestamp()
    return float(at)


def playability(licences: Iterable[Licence], title_id: str, country: str, at: float | datetime) -> Playability:
    """The verdict for `title_id` in `country` at instant `at`, from any iterable of licences."""
    moment = _seconds(at)
    for licence in licences:
        if licence.title_id != title_id or licence.region != country:
            continue
        if moment < licence.start:
            return NotYet(licence.start)
        if licence.end is not None and moment >= licence.end:
            return Expired(licence.end)
        return Playable(licence)
    return NotLicensed()


def is_playable(licences: Iterable[Licence], title_id: str, country: str, at: float | datetime) -> bool:
    """True when `title_id` may be played in `country` at `at` (see `playability` for the reason)."""
    return isinstance(playability(licences, title_id, country, at), Playable)


def licensed_through(licence: Licence, start: float, end: float) -> bool:
    """True when the licence covers every instant of ``[start, end]`` (the coming fill window)."""
    return licence.start <= start and (licence.end is None or end < licence.end)


def titles_licensed_for_window(licences: Iterable[Licence], country: str, start: float,
                               window: float) -> frozenset[str]:
    """Titles licensed in `country` for the whole window ``[start, start + window]``."""
    return frozenset(lic.title_id for lic in licences
                     if lic.region == country and licensed_through(lic, start, start + window))


def parse_licence(title_id: str, body: dict, *, region: str | None = None) -> Licence:
    """A licence from a JSON body (``region``, ``start``, ``end``, ``exclusive``); 422 names the field.

    `region` comes from the URL for PUT ``.../licenses/{region}`` and must then match the body's, if any.
    """
    v.obj(body)
    body_region = v.country(body, "region", region)
    if region is not None and body_region != region:
        raise invalid("region", f"the body says {body_region!r} but the URL says {region!r}")
    start = v.timestamp(body, "start")
    end = v.timestamp(body, "end", None)
    if end is not None and end <= start:
        raise invalid("end", "must be later than start")
    return Licence(title_id, body_region, start, end, v.boolean(body, "exclusive", False))
