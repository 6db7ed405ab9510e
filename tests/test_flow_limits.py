"""Concurrency and rate limits (issue 21), enforced by the claim across every claimer."""

from __future__ import annotations

from taskservice.model import NewTask, Rate
from taskservice.store import Store
from taskservice.store import limits as limits_store


async def test_smoke(store: Store) -> None:
    await limits_store.set_limit(store.pool, "type", "sleep", 2, None, "customer", "op")
    ids = [
        i
        for i, _ in await store.create_tasks(
            [NewTask(f"t{n}", "sleep", {"customer": str(n % 3)}) for n in range(12)]
        )
    ]
    claimed = await store.claim("w", 10)
    keys = sorted(c.task.limit_key or "" for c in claimed)
    assert keys == ["0", "0", "1", "1", "2", "2"], keys
    assert await store.claim("w", 10) == []
    assert len(ids) == 12
    await limits_store.set_limit(store.pool, "type", "sleep", None, Rate(3, 3600), None, "op")
    claimed = await store.claim("w", 10)  # the three running hold no concurrency limit any more
    assert len(claimed) == 3, claimed
    assert await store.claim("w", 10) == []
