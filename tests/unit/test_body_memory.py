"""The memory of large request bodies (servers/fastapi/body_memory.py): a body nothing refers to any more
gives its memory to the next one, which then reads as any bytes object of its contents would; a body still
referred to is never written again; the pool stays within its limit."""

from __future__ import annotations

import ctypes
import os

import pytest

from drum.servers.fastapi.body_memory import REUSABLE, BodyBuffer, BodyPool

MIB = 1 << 20

pytestmark = pytest.mark.skipif(not REUSABLE, reason="bytes objects are not laid out as in CPython's default build")


def _fill(pool: BodyPool, body: bytes) -> bytes:
    buffer = BodyBuffer(len(body), pool)
    assert buffer.allocate()
    for start in range(0, len(body), 1 << 18):
        assert buffer.write(body[start : start + (1 << 18)])
    assert buffer.complete
    return buffer.data


def test_a_body_nobody_holds_gives_its_memory_to_the_next_one_which_reads_as_its_own_bytes():
    pool = BodyPool(16 * MIB)
    first = _fill(pool, os.urandom(4 * MIB))
    hash(first)  # cached in the object: the next body must not inherit it
    address = id(first)
    del first
    body = os.urandom(3 * MIB + 5)
    second = _fill(pool, body)
    assert id(second) == address  # the same object and memory
    assert len(second) == len(body) and second == body and bytes(second) == body
    assert hash(second) == hash(bytes(bytearray(body)))
    assert second[-5:] == body[-5:] and second.endswith(body[-100:])
    assert ctypes.c_ubyte.from_address(id(second) + bytes.__basicsize__ - 1 + len(body)).value == 0  # its NUL
    assert pool.kept == 4 * MIB


def test_a_body_still_held_is_never_written_again():
    pool = BodyPool(64 * MIB)
    bodies = [os.urandom(2 * MIB) for _ in range(3)]
    held = [_fill(pool, body) for body in bodies]  # a hook that keeps every body it was given
    assert len({id(data) for data in held}) == 3
    assert held == bodies
    view = memoryview(held.pop())  # a view (numpy.frombuffer, BytesIO) holds its object too
    again = _fill(pool, os.urandom(2 * MIB))
    assert id(again) not in {id(data) for data in held} | {id(view.obj)}
    assert held == bodies[:2] and view == bodies[2]


def test_the_pool_keeps_at_most_its_limit_and_drops_free_smaller_bodies_for_a_larger_one():
    pool = BodyPool(10 * MIB)
    small = [_fill(pool, os.urandom(3 * MIB)) for _ in range(3)]
    assert pool.kept == 9 * MIB
    extra = _fill(pool, os.urandom(3 * MIB))  # over the limit with every kept body held: not kept
    assert pool.kept == 9 * MIB
    del small[:2], extra
    large = _fill(pool, os.urandom(6 * MIB))  # the two free ones make room; the held one stays
    assert pool.kept == 9 * MIB
    large_id = id(large)
    del large
    assert id(_fill(pool, os.urandom(5 * MIB))) == large_id
    assert small[0] is not None and len(small[0]) == 3 * MIB


def test_small_bodies_are_left_to_the_allocator():
    pool = BodyPool(64 * MIB)
    _fill(pool, os.urandom(BodyPool.MIN_SIZE - 1))
    assert pool.kept == 0


def test_pieces_written_before_the_memory_is_taken_are_kept_and_copied_in():
    pool = BodyPool(16 * MIB)
    body = os.urandom(2 * MIB)
    buffer = BodyBuffer(len(body), pool)
    assert buffer.write(body[:1000]) and buffer.write(body[1000:5000])
    assert not buffer.allocated and pool.kept == 0  # waiting for the budget: no memory taken yet
    assert buffer.allocate() and buffer.allocated
    free = buffer.free()
    assert len(free) == len(body) - 5000
    free[:] = body[5000:]
    buffer.received += len(free)
    assert buffer.complete and buffer.data == body
