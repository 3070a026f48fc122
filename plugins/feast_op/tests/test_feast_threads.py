"""The process-wide FeatureStore cache is safe to use from several threads (issue 12 item 8)."""

from __future__ import annotations

import threading

from funnel_feast import query


def test_store_cache_builds_one_store_per_repository_under_contention(sqlite_repo, monkeypatch):
    monkeypatch.setattr(query, "_STORES", {})
    built = []
    import feast

    class Counting(feast.FeatureStore):
        def __init__(self, *args, **kwargs):
            built.append(1)
            threading.Event().wait(0.05)  # widen the window between the check and the set
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(feast, "FeatureStore", Counting)
    start = threading.Barrier(8)
    got = []

    def worker():
        start.wait()
        got.append(query._open_store(str(sqlite_repo)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 8 and len({id(s) for s in got}) == 1
    assert len(built) == 1
