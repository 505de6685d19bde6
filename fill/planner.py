"""The fill planner: (manifest, what the store holds, tier capacities) → the ordered actions of one run.

Pure: no I/O, no clock, deterministic (same inputs, same plan). `fill/runner.py` performs the actions.

Policy, in the order the actions come out:
1. **Evict** what the manifest no longer lists (licence expired, fell out of the ranking), and copies that
   cannot be kept: a held file whose size or SHA-256 differs from the manifest's (the content was
   republished) or that the store quarantined. Evictions come first so their room is free for what follows.
   Then **drop partial downloads** of files the manifest no longer lists (or lists with another SHA-256).
2. **Move** listed files whose target tier changed (hot head to SSD, cooled-down files to HDD), in rank
   order, each only when the target tier has room at that point; a move that frees room can let a later
   one fit, so moves are retried until none makes progress. A move that never fits leaves the file where
   it is (it is still served from there).
3. **Fetch** missing listed files in rank order into their target tier while they fit; one that does not
   fit is skipped and smaller, lower-ranked ones may still fit.

A valid copy of a listed file is never evicted, so the plan never evicts something it then re-fetches
(a changed or quarantined copy is a different file: it is evicted and the manifest's version fetched).
A target tier the appliance does not have falls back to `default_tier`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fill.manifest import Item, Manifest


@dataclass(frozen=True)
class Held:
    """One file in the store's index, as the planner sees it."""

    key: str
    tier: str
    size: int
    sha256: str
    ready: bool = True          # False: quarantined


class EvictReason(StrEnum):
    NOT_LISTED = "not_listed"   # not in the manifest any more (licence expiry, ranking)
    CHANGED = "changed"         # held size/sha256 differ from the manifest's: republished content
    QUARANTINED = "quarantined"  # the store found the copy damaged


class SkipReason(StrEnum):
    NO_ROOM = "no_room"         # fetch: the target tier has no room left for it
    NO_ROOM_TO_MOVE = "no_room_to_move"  # move: the target tier is full; the file stays where it is


@dataclass(frozen=True)
class Evict:
    key: str
    tier: str
    size: int
    reason: EvictReason


@dataclass(frozen=True)
class Staged:
    """A partial download in the store, as the planner sees it."""

    key: str
    sha256: str
    have: int                   # bytes on disk


@dataclass(frozen=True)
class DropPartial:
    """Delete a partial download nothing will resume: its key is not listed any more, or the listed
    file changed (another SHA-256). Left alone, it would hold its disk space until the store's
    `partial_max_age`."""

    key: str
    size: int                   # bytes it holds


@dataclass(frozen=True)
class Move:
    key: str
    from_tier: str
    to_tier: str
    size: int


@dataclass(frozen=True)
class Fetch:
    item: Item
    tier: str                   # where to put it (the item's tier, or the fallback)

    @property
    def key(self) -> str:
        return self.item.key

    @property
    def size(self) -> int:
        return self.item.size


@dataclass(frozen=True)
class Skip:
    key: str
    size: int
    tier: str
    reason: SkipReason


Action = Evict | DropPartial | Move | Fetch


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    skipped: tuple[Skip, ...]
    kept: int                   # listed files already held in the right tier (or left where they are)
    used_after: Mapping[str, int]  # projected bytes per tier once every action succeeded

    def of(self, kind: type) -> tuple:
        return tuple(a for a in self.actions if isinstance(a, kind))

    @property
    def fetch_bytes(self) -> int:
        return sum(a.size for a in self.of(Fetch))

    @property
    def empty(self) -> bool:
        return not self.actions


def plan(manifest: Manifest, held: Iterable[Held], capacity: Mapping[str, int], *,
         default_tier: str, staged: Iterable[Staged] = ()) -> Plan:
    """Compute the actions that bring the store from `held` towards `manifest` within `capacity`.

    `capacity` maps each tier the appliance has to the bytes it may hold; `default_tier` must be one of them.
    `staged` are the store's partial downloads: those of files the manifest no longer wants are dropped
    right after the evictions (a listed one resumes when its fetch runs, now or in a later run).
    """
    if default_tier not in capacity:
        raise ValueError(f"default tier {default_tier!r} is not one of the tiers {sorted(capacity)}")
    inventory = {h.key: h for h in held}
    wanted = {item.key: item for item in manifest.items}
    used = {tier: 0 for tier in capacity}
    for h in inventory.values():
        used[h.tier] = used.get(h.tier, 0) + h.size

    evictions = _evictions(inventory, wanted)
    for e in evictions:
        used[e.tier] -= e.size
    evicted = {e.key for e in evictions}
    kept_copies = {k: h for k, h in inventory.items() if k not in evicted}

    def target(item: Item) -> str:
        return item.tier if item.tier in capacity else default_tier

    moves, stuck = _moves(manifest.items, kept_copies, capacity, used, target)
    fetches: list[Fetch] = []
    skipped = list(stuck)
    for item in manifest.items:
        if item.key in kept_copies:
            continue
        tier = target(item)
        if used[tier] + item.size <= capacity[tier]:
            used[tier] += item.size
            fetches.append(Fetch(item, tier))
        else:
            skipped.append(Skip(item.key, item.size, tier, SkipReason.NO_ROOM))
    kept = len(kept_copies) - len(moves)
    drops = [DropPartial(p.key, p.have) for p in sorted(staged, key=lambda p: p.key)
             if p.key not in wanted or wanted[p.key].sha256 != p.sha256]
    return Plan((*evictions, *drops, *moves, *fetches), tuple(skipped), kept, dict(used))


def _evictions(inventory: Mapping[str, Held], wanted: Mapping[str, Item]) -> list[Evict]:
    result = []
    for key in sorted(inventory):
        h = inventory[key]
        item = wanted.get(key)
        if item is None:
            reason = EvictReason.NOT_LISTED
        elif not h.ready:
            reason = EvictReason.QUARANTINED
        elif h.size != item.size or h.sha256 != item.sha256:
            reason = EvictReason.CHANGED
        else:
            continue
        result.append(Evict(key, h.tier, h.size, reason))
    return result


def _moves(items: Iterable[Item], kept: Mapping[str, Held], capacity: Mapping[str, int],
           used: dict[str, int], target) -> tuple[list[Move], list[Skip]]:
    """Moves in rank order, repeated while one that did not fit earlier fits now. Mutates `used`."""
    pending = [(item, kept[item.key]) for item in items
               if item.key in kept and kept[item.key].tier != target(item)]
    moves: list[Move] = []
    progress = True
    while pending and progress:
        progress = False
        waiting = []
        for item, h in pending:
            to = target(item)
            if used[to] + h.size <= capacity[to]:
                used[to] += h.size
                used[h.tier] -= h.size
                moves.append(Move(item.key, h.tier, to, h.size))
                progress = True
            else:
                waiting.append((item, h))
        pending = waiting
    stuck = [Skip(item.key, h.size, target(item), SkipReason.NO_ROOM_TO_MOVE) for item, h in pending]
    return moves, stuck
