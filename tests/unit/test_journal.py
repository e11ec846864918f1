"""The pool book and its undo journal: blocks applied, reorgs rewound, too-deep reorgs refused."""

from __future__ import annotations

import pytest
from bench import mainnet_universe as mu

from arbx.domain.errors import MathError, StaleStateError
from arbx.domain.events import LoggedEvent, V2Sync
from arbx.domain.journal import PoolBook
from arbx.domain.pools import Token, V2Pool, V3Pool

A = V2Pool("0x" + "aa" * 20, Token("0x" + "01" * 20), Token("0x" + "02" * 20), 100, 100)
B = V2Pool("0x" + "bb" * 20, Token("0x" + "01" * 20), Token("0x" + "03" * 20), 500, 500)


def h(n: int, branch: str = "a") -> str:
    return f"0x{branch}{n:063x}"


def sync(number: int, address: str, r0: int, log_index: int = 0, branch: str = "a") -> LoggedEvent:
    return LoggedEvent(number, h(number, branch), log_index, address, V2Sync(r0, r0 + 1))


def test_blocks_apply_in_log_order_and_report_changes() -> None:
    book = PoolBook([A, B], 10, h(10), depth=8)
    changed = book.apply_block(
        11, h(11), h(10), [sync(11, A.address, 7, log_index=5), sync(11, A.address, 3, 2)]
    )
    assert changed == {A.address}
    pool = book.pools[A.address]
    assert isinstance(pool, V2Pool)
    assert pool.reserve0 == 7  # the later log wins
    assert book.apply_block(12, h(12), h(11), [sync(12, "0x" + "cc" * 20, 1)]) == set()
    assert (book.head_number, book.head_hash) == (12, h(12))


def test_address_case_does_not_matter() -> None:
    book = PoolBook([A], 0, h(0))
    assert book.apply_block(1, h(1), h(0), [sync(1, A.address.upper().replace("0X", "0x"), 9)])


def test_a_block_that_does_not_extend_the_head_is_refused() -> None:
    book = PoolBook([A], 10, h(10))
    with pytest.raises(StaleStateError):
        book.apply_block(11, h(11), h(10, "b"), [])
    with pytest.raises(StaleStateError):
        book.apply_block(12, h(12), h(11), [])


def test_reorg_rewinds_and_reapplies() -> None:
    book = PoolBook([A, B], 0, h(0), depth=16)
    for n in range(1, 6):
        book.apply_block(n, h(n), h(n - 1), [sync(n, A.address, 100 + n)])
    book.apply_block(6, h(6), h(5), [sync(6, B.address, 66)])
    assert book.rewind(3) == {A.address, B.address}
    assert (book.head_number, book.head_hash) == (3, h(3))
    pool_a, pool_b = book.pools[A.address], book.pools[B.address]
    assert isinstance(pool_a, V2Pool)
    assert isinstance(pool_b, V2Pool)
    assert pool_a.reserve0 == 103
    assert pool_b == B
    for n in range(4, 8):
        parent = h(n - 1) if n == 4 else h(n - 1, "b")
        book.apply_block(n, h(n, "b"), parent, [sync(n, A.address, 900 + n, branch="b")])
    assert book.hash_at(7) == h(7, "b")
    assert book.hash_at(3) == h(3)
    pool_a = book.pools[A.address]
    assert isinstance(pool_a, V2Pool)
    assert pool_a.reserve0 == 907


def test_rewind_deeper_than_the_journal_is_refused() -> None:
    book = PoolBook([A], 0, h(0), depth=4)
    for n in range(1, 11):
        book.apply_block(n, h(n), h(n - 1), [sync(n, A.address, n)])
    assert book.oldest == 6
    assert book.hash_at(6) == h(6)  # the parent of the oldest block kept
    assert book.hash_at(5) is None
    book.rewind(6)
    assert book.head_number == 6
    with pytest.raises(StaleStateError):
        book.rewind(5)


def _quote(pool: V3Pool) -> object:
    try:
        return pool.swap(True, 10**15)
    except MathError as error:
        return str(error)


def test_a_replaced_v3_state_drops_its_swap_steps_and_swaps_the_same_after_a_rewind() -> None:
    universe = mu.generate(160, seed=3)
    book = PoolBook(universe.pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    before = {a: p for a, p in book.pools.items() if isinstance(p, V3Pool)}
    quotes = {a: _quote(p) for a, p in before.items()}  # walks each state's ladder
    assert any(p.ladders for p in before.values())
    events = next(iter(mu.blocks(universe, 1, seed=3)))
    number = mu.FIRST_BLOCK + 1
    changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
    replaced = [a for a in changed if a in before]
    assert replaced
    for address in replaced:  # a cache only the state's own swaps used
        assert book.pools[address] is not before[address]
        assert not before[address].ladders
    assert book.rewind(mu.FIRST_BLOCK) == changed
    for address in replaced:  # the old state again, its steps walked again on demand
        assert book.pools[address] is before[address]
        assert _quote(before[address]) == quotes[address]
