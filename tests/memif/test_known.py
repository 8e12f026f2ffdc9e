"""KnownOffsets: what the fast paths may rely on after validation."""

from __future__ import annotations

from memif.known import UNKNOWN, KnownOffsets


def test_limit_stays_unknown_until_every_slot_is_learned() -> None:
    known = KnownOffsets(8)
    known.learn(1, 0, [100, 200, 300, 400], 400)
    assert known.limit == UNKNOWN  # half the slots still unknown: no fast path yet
    known.learn(1, 4, [50, 60, 70, 80], 80)
    assert known.limit == 400
    assert known.take(2, 4) == [300, 400, 50, 60]


def test_learning_wraps_around_the_ring() -> None:
    known = KnownOffsets(4)
    known.learn(0, 3, [30, 0, 10, 20], 30)
    assert known.values == [0, 10, 20, 30]
    assert known.words.tolist() == [0, 10, 20, 30]
    assert known.limit == 30
    assert known.take(3, 2) == [30, 0]


def test_limit_never_shrinks_below_an_offset_still_known() -> None:
    known = KnownOffsets(4)
    known.learn(0, 0, [0, 10, 20, 900], 900)
    known.learn(0, 0, [5, 6], 6)  # slot 3 still holds 900
    assert known.limit == 900


def test_another_region_forgets_everything() -> None:
    known = KnownOffsets(2)
    known.learn(0, 0, [10, 20], 20)
    known.learn(1, 0, [7], 7)
    assert known.region == 1
    assert known.limit == UNKNOWN
    assert known.values == [7, UNKNOWN]
    assert known.words.tolist() == [7, UNKNOWN]


def test_fixed_offsets_are_known_at_once() -> None:
    known = KnownOffsets.fixed(1, [0, 2048, 4096])
    assert (known.region, known.limit) == (1, 4096)
    assert known.view.tolist() == [0, 2048, 4096]
