"""oca.files.tree_signature: what `oca serve --root --rescan` compares to decide whether to index again."""

import os
import time

from oca.files import SETTLE_NS, tree_signature


def test_a_tree_that_changed_within_the_settle_time_is_not_taken_as_settled(tmp_path):
    (tmp_path / "t1").mkdir()
    past = time.time_ns() - 5 * SETTLE_NS

    def stamp(ns: int) -> None:
        for d in (tmp_path, tmp_path / "t1"):
            os.utime(d, ns=(ns, ns))
    stamp(past)
    settled = tree_signature(tmp_path)
    assert settled is not None and tree_signature(tmp_path) == settled
    # A file added in the same clock tick as the directory's last change leaves its mtime as it was,
    # so the signature cannot see it...
    (tmp_path / "t1" / "a.mp4").write_bytes(b"a")
    stamp(past)
    assert tree_signature(tmp_path) == settled
    # ...which is why a tree whose newest change is that recent gives no signature: rescan again.
    stamp(time.time_ns())
    assert tree_signature(tmp_path) is None
    (tmp_path / "t2").mkdir()
    os.utime(tmp_path, ns=(past, past))
    assert tree_signature(tmp_path) is None          # t2 itself is new
    os.utime(tmp_path / "t2", ns=(past, past))
    stamp(past)
    assert tree_signature(tmp_path) not in (None, settled)
