"""The daemon builds models with the cyclic collector off and freezes them (steering.service.frozen_build)."""

import gc

import pytest

from steering.service import frozen_build


@pytest.fixture(autouse=True)
def _thawed():
    yield
    gc.unfreeze()        # leave the test process's collector as it was
    gc.enable()


def test_a_build_runs_without_the_collector_and_what_it_made_is_frozen():
    before = gc.get_freeze_count()
    with frozen_build():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)


def test_a_failed_build_freezes_nothing_and_turns_the_collector_back_on():
    before = gc.get_freeze_count()
    with pytest.raises(ValueError), frozen_build():
        raise ValueError("not a snapshot")
    assert gc.isenabled()
    assert gc.get_freeze_count() == before


def test_a_collector_turned_off_before_stays_off():
    gc.disable()
    with frozen_build():
        pass
    assert not gc.isenabled()
