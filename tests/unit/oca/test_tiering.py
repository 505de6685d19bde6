import pytest

from oca.tiering import DiskSpace, NoRoom, Placed, choose_disk


def d(disk_id, capacity, used, fs_free=None, usable=True):
    return DiskSpace(disk_id, capacity, used, fs_free, usable)


@pytest.mark.parametrize(("disks", "size", "expected"), [
    ([d("ssd/0", 100, 10), d("ssd/1", 100, 50)], 10, Placed("ssd/0")),          # most free wins
    ([d("ssd/0", 100, 50), d("ssd/1", 100, 50)], 10, Placed("ssd/0")),          # tie → lowest id
    ([d("ssd/1", 100, 50), d("ssd/0", 100, 50)], 10, Placed("ssd/0")),          # ... whatever the order
    ([d("ssd/0", 100, 90), d("ssd/1", 100, 0, usable=False)], 10, Placed("ssd/0")),  # failed disk skipped
    ([d("ssd/0", 100, 90)], 10, Placed("ssd/0")),                              # exactly full after: fits
    ([d("ssd/0", 100, 91)], 10, NoRoom(10, 9, 1)),                             # one byte short
    ([d("ssd/0", 100, 0, fs_free=5)], 10, NoRoom(10, 5, 1)),                   # filesystem is the limit
    ([d("ssd/0", 100, 0, usable=False)], 1, NoRoom(1, 0, 0)),                  # nothing usable
    ([], 1, NoRoom(1, 0, 0)),
    ([d("hdd/0", 100, 120)], 0, Placed("hdd/0")),                              # over-full counts as 0 free
])
def test_choose_disk(disks, size, expected):
    assert choose_disk(disks, size) == expected
