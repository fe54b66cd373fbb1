"""Request ids made by the server (no X-Request-ID from the client): version-4 UUIDs, distinct, and
distinct between forked worker processes."""

from __future__ import annotations

import multiprocessing
import uuid

from drum.serving.http import new_request_id, request_id


def test_a_new_request_id_is_a_random_uuid4() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:500]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value
    assert request_id("client-chosen") == "client-chosen"


def _child_ids(queue: multiprocessing.Queue) -> None:
    queue.put([new_request_id() for _ in range(5)])


def test_forked_workers_make_different_ids() -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_child_ids, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    got = [queue.get(timeout=30) for _ in children]
    for child in children:
        child.join(30)
    mine = [new_request_id() for _ in range(5)]
    assert not set(got[0]) & set(got[1]) and not set(got[0]) & set(mine)
