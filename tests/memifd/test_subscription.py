"""Subscriptions bounded in bytes, per stream and across streams (a shared BytePool)."""

from __future__ import annotations

from memifd.core.subscription import BytePool, Subscription


def sized(
    maxsize: int = 100, max_bytes: int | None = None, pool: BytePool | None = None
) -> Subscription[bytes]:
    return Subscription(maxsize, sizer=len, max_bytes=max_bytes, pool=pool)


def test_bytes_bound_drops_oldest_and_counts() -> None:
    sub = sized(max_bytes=10)
    assert sub.put_many([b"aaaa", b"bbbb"]) == []
    assert sub.nbytes == 8
    assert sub.put_many([b"cccc"]) == [b"aaaa"]  # 12 bytes would not fit
    assert sub.nbytes == 8 and sub.dropped == 1
    # a batch larger than the whole budget keeps its newest part
    assert sub.put_many([b"1111", b"2222", b"3333"]) == [b"bbbb", b"cccc", b"1111"]
    assert sub.get_batch(10, 0) == [b"2222", b"3333"]
    assert sub.nbytes == 0 and sub.dropped == 4


def test_count_bound_still_holds_with_a_sizer() -> None:
    sub = sized(maxsize=2, max_bytes=1000)
    assert sub.put_many([b"a", b"b", b"c"]) == [b"a"]
    assert sub.put_many([b"d"]) == [b"b"]
    assert sub.get_batch(10, 0) == [b"c", b"d"]


def test_get_batch_is_cut_by_bytes_but_returns_at_least_one_item() -> None:
    sub = sized(max_bytes=1000)
    sub.put_many([b"x" * 300, b"y" * 300, b"z" * 300])
    assert sub.get_batch(10, 0, max_bytes=500) == [b"x" * 300]
    assert sub.get_batch(10, 0, max_bytes=100) == [b"y" * 300]  # larger than asked: still one
    assert sub.get_batch(10, 0, max_bytes=1000) == [b"z" * 300]
    assert sub.nbytes == 0


def test_pool_is_shared_and_given_back() -> None:
    pool = BytePool(10)
    first, second = sized(pool=pool), sized(pool=pool)
    assert first.put_many([b"aaaa", b"bbbb"]) == []
    assert pool.used == 8
    # 2 bytes are left: the second stream keeps the newest items that fit
    assert second.put_many([b"c", b"dd"]) == [b"c"]
    assert pool.used == 10 and second.dropped == 1
    # its own 2 bytes given back are not enough: the new item is dropped too
    assert second.put_many([b"eeee"]) == [b"dd", b"eeee"]
    assert pool.used == 8 and len(second) == 0
    # a stream at the pool's limit gives back its own oldest bytes first
    assert first.put_many([b"ffff"]) == [b"aaaa"]
    assert pool.used == 8
    assert first.get_batch(10, 0) == [b"bbbb", b"ffff"] and pool.used == 0


def test_closing_or_ending_a_stream_frees_its_bytes() -> None:
    pool = BytePool(100)
    sub = sized(pool=pool)
    sub.put_many([b"x" * 40])
    sub.end("done")
    assert pool.used == 40  # the reader still gets what was queued
    assert sub.get_batch(10, 0) == [b"x" * 40] and pool.used == 0
    other = sized(pool=pool)
    other.put_many([b"y" * 30])
    other.close()
    assert pool.used == 0 and other.put_many([b"z"]) == []


def test_without_a_sizer_bytes_are_not_counted() -> None:
    pool = BytePool(1)
    sub: Subscription[bytes] = Subscription(3, pool=pool, max_bytes=1)
    assert sub.put_many([b"long item", b"another"]) == []
    assert pool.used == 0 and sub.nbytes == 0
