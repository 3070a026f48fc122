"""A small in-process cache of feature rows: size-bounded (LRU) with a time-to-live."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

__all__ = ["FeatureCache"]


class FeatureCache:
    """Maps entity id → one row of feature values (a tuple), for at most ``ttl`` seconds.

    Holds at most ``max_size`` ids; the least recently used id is evicted first. Entities
    the store did not know are cached too (as ``None``), so a missing id is not looked up
    again before its entry expires. Thread-safe.
    """

    def __init__(self, max_size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size <= 0:
            raise ValueError(f"FeatureCache: max_size must be > 0, got {max_size}")
        if ttl <= 0:
            raise ValueError(f"FeatureCache: ttl must be > 0 seconds, got {ttl}")
        self.max_size = int(max_size)
        self.ttl = float(ttl)
        self._clock = clock
        self._rows: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get_many(self, ids: Iterable[Hashable]) -> tuple[dict[Hashable, Any], list[Hashable]]:
        """``(found, missing)``: cached rows by id, and the ids to fetch from the store."""
        now = self._clock()
        found: dict[Hashable, Any] = {}
        missing: list[Hashable] = []
        with self._lock:
            rows = self._rows
            for key in ids:
                entry = rows.get(key)
                if entry is not None and entry[0] > now:
                    rows.move_to_end(key)
                    found[key] = entry[1]
                else:
                    if entry is not None:
                        del rows[key]
                    missing.append(key)
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def put_many(self, items: Iterable[tuple[Hashable, Any]]) -> None:
        """Store rows (``None`` marks an entity the store does not have)."""
        expires = self._clock() + self.ttl
        with self._lock:
            rows = self._rows
            for key, row in items:
                rows[key] = (expires, row)
                rows.move_to_end(key)
            while len(rows) > self.max_size:
                rows.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._rows.clear()
