"""Placement policy for the tiered store: which disk of a tier takes a new file. Pure.

An appliance has several disks per tier (``ssd`` = hot, ``hdd`` = warm). A new file goes to the
usable disk of its tier with the most free space, where free space is the smaller of what the
configured capacity leaves (capacity minus indexed files minus partial downloads) and what the
filesystem itself reports. Spreading by free space keeps disks evenly filled, so a failed disk
takes a proportionate share of the catalogue with it. Ties go to the lowest disk id, so the choice
is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DiskSpace:
    disk_id: str
    capacity: int          # configured bytes this store may use on the disk
    used: int              # bytes held by indexed files and reserved by partial downloads
    fs_free: int | None    # bytes the filesystem reports available (None: unknown)
    usable: bool           # False when the disk is failed

    @property
    def free(self) -> int:
        free = self.capacity - self.used
        if self.fs_free is not None:
            free = min(free, self.fs_free)
        return max(free, 0)


@dataclass(frozen=True)
class Placed:
    disk_id: str


@dataclass(frozen=True)
class NoRoom:
    """No usable disk of the tier can take `size` bytes; `largest_free` says how close it came."""

    size: int
    largest_free: int
    usable_disks: int


Placement = Placed | NoRoom


def choose_disk(disks: Sequence[DiskSpace], size: int) -> Placement:
    """Pick the usable disk with the most free space that fits `size` bytes."""
    usable = [d for d in disks if d.usable]
    best = max(usable, key=lambda d: (d.free, _reverse_id(d.disk_id)), default=None)
    if best is None or best.free < size:
        return NoRoom(size, best.free if best else 0, len(usable))
    return Placed(best.disk_id)


def _reverse_id(disk_id: str) -> tuple[int, ...]:
    # max() takes the first maximum it meets only by accident of order; make "lowest id wins" explicit.
    return tuple(-ord(c) for c in disk_id)
