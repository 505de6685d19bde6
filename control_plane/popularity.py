"""Time-decayed view counts per region, kept as plain sums so SQL only ever adds.

A title's popularity in a region at time ``now`` is ``Σ wᵢ · 2^(−(now − tᵢ)/H)`` over its views
(``wᵢ`` = 1 for a ``play`` event, ``heartbeat_weight`` for a heartbeat), with half-life ``H``
(default 3 days: a view from three days ago counts half, a week ago about a fifth). Decaying
every stored row on every flush would rewrite the whole table, so rows store the sum scaled to a
fixed epoch ``E``: ``stored = Σ wᵢ · 2^((tᵢ − E)/H)``. Adding a view is then an SQL addition of a
constant, and ``current = stored · 2^(−(now − E)/H)``; the common factor does not change the
ranking. When ``(now − E)/H`` grows large enough to threaten float range, `rebase` moves the
epoch by multiplying every row by one constant.
"""

from __future__ import annotations

REBASE_EXPONENT = 256.0   # 2^256 ≈ 1e77: far from the float limit (≈ 1e308), rebased long before


def growth(at: float, epoch: float, half_life: float) -> float:
    return 2.0 ** ((at - epoch) / half_life)


def stored_increment(weight: float, at: float, epoch: float, half_life: float) -> float:
    """What to ADD to the stored sum for a view of `weight` at time `at`."""
    return weight * growth(at, epoch, half_life)


def current_score(stored: float, now: float, epoch: float, half_life: float) -> float:
    """The decayed view count at `now` from a stored sum."""
    return stored / growth(now, epoch, half_life)


def needs_rebase(now: float, epoch: float, half_life: float) -> bool:
    return (now - epoch) / half_life > REBASE_EXPONENT


def rebase_factor(old_epoch: float, new_epoch: float, half_life: float) -> float:
    """Multiply every stored sum by this to move the epoch from `old_epoch` to `new_epoch`."""
    return 2.0 ** (-(new_epoch - old_epoch) / half_life)
