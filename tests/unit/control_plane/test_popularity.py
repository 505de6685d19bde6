"""Decay arithmetic: stored sums only ever grow by addition; the epoch can move without changing scores."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.popularity import (
    current_score,
    needs_rebase,
    rebase_factor,
    stored_increment,
)

H = 3 * 86400.0


@pytest.mark.parametrize("age_half_lives,expected", [(0, 1.0), (1, 0.5), (2, 0.25), (10, 2 ** -10)])
def test_one_view_decays_by_half_lives(age_half_lives, expected):
    epoch, t = 1000.0, 5000.0
    stored = stored_increment(1.0, t, epoch, H)
    assert current_score(stored, t + age_half_lives * H, epoch, H) == pytest.approx(expected)


@given(st.lists(st.tuples(st.floats(0, 100 * H), st.floats(0.01, 100)), min_size=1, max_size=20),
       st.floats(0, 50 * H))
def test_sum_equals_direct_decay_and_rebase_preserves(views, later):
    epoch = 0.0
    now = max(t for t, _ in views) + later
    stored = sum(stored_increment(w, t, epoch, H) for t, w in views)
    direct = sum(w * 2 ** (-(now - t) / H) for t, w in views)
    assert math.isclose(current_score(stored, now, epoch, H), direct, rel_tol=1e-9)
    new_epoch = now
    moved = stored * rebase_factor(epoch, new_epoch, H)
    assert math.isclose(current_score(moved, now, new_epoch, H), direct, rel_tol=1e-9)


def test_needs_rebase_long_before_overflow():
    assert not needs_rebase(255 * H, 0.0, H)
    assert needs_rebase(257 * H, 0.0, H)
    assert math.isfinite(stored_increment(1e6, 300 * H, 0.0, H))
