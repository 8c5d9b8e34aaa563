"""A ResultCacheStore's inventory (what ``resultkit gc`` reads) and its last-hit markers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from resultkit import Flow, cache_validators, task
from resultkit.caching import CacheEntryInfo, CacheKey, ResultCacheStore
from resultkit.results import LocalResult


def _flow(checkpoint_dir: Path | None = None) -> tuple[Flow, object, object]:
    result = LocalResult(dir=str(checkpoint_dir)) if checkpoint_dir else None

    @task(
        cache_for=timedelta(hours=1),
        cache_validator=cache_validators.all_inputs,
        checkpoint=result is not None,
        result=result,
    )
    def double(x):
        return 2 * x

    with Flow("inv") as flow:
        a = double(1)
        b = double(2)
    return flow, a, b


def _files(root: Path, folder: str) -> list[Path]:
    return [p for p in root.rglob(f"{folder}/*") if p.is_file() and p.suffix != ".rkmeta"]


def test_entries_list_each_entry_with_its_times_and_value(tmp_path):
    store = ResultCacheStore(LocalResult(dir=str(tmp_path / "cache")))
    flow, a, _ = _flow()
    before = datetime.now(timezone.utc)
    flow.run(caches=store)
    assert flow.run(caches=store).result[a].is_cached()
    infos = store.entries(check_values=True)
    assert len(infos) == 2
    for info in infos:
        assert isinstance(info, CacheEntryInfo)
        assert info.key == CacheKey("double", "inv") and info.label == "double"
        assert before <= info.created <= datetime.now(timezone.utc)
        assert info.expires is not None and info.expires - info.created < timedelta(
            hours=1, seconds=5
        )
        assert info.last_hit is not None and info.last_hit >= info.created  # both were hit
        assert info.value_kind == "stored" and info.value_present is True
        assert info.value_at.startswith(info.slot + "/values/")
    assert [i.created for i in infos] == sorted(i.created for i in infos)


def test_remove_deletes_entry_index_and_stored_copy_only(tmp_path):
    root = tmp_path / "cache"
    store = ResultCacheStore(LocalResult(dir=str(root)))
    flow, a, b = _flow()
    flow.run(caches=store)
    flow.run(caches=store)  # hits: builds the index and the last-hit markers
    first, second = store.entries()
    store.remove(first)
    assert [i.name for i in store.entries()] == [second.name]
    assert len(_files(root, "values")) == 1 and len(_files(root, "hits")) == 1
    assert len(_files(root, "inputs")) == 1  # the removed entry's index document is gone
    state = flow.run(caches=store)
    cached = {state.result[a].is_cached(), state.result[b].is_cached()}
    assert cached == {True, False}  # the removed one is computed again, the other hits


def test_remove_never_deletes_the_checkpoint_it_points_to(tmp_path):
    store = ResultCacheStore(LocalResult(dir=str(tmp_path / "cache")))
    flow, _, _ = _flow(tmp_path / "checkpoints")
    flow.run(caches=store)
    infos = store.entries(check_values=True)
    assert {i.value_kind for i in infos} == {"location"} and all(i.value_present for i in infos)
    checkpoints = [p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()]
    for info in infos:
        store.remove(info)
    assert store.entries() == []
    assert [p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()] == checkpoints


def test_a_hit_writes_its_marker_at_most_once_an_hour_per_process(tmp_path):
    root = tmp_path / "cache"
    store = ResultCacheStore(LocalResult(dir=str(root)))
    flow, _, _ = _flow()
    flow.run(caches=store)
    assert _files(root, "hits") == []  # a put is not a hit
    flow.run(caches=store)
    markers = _files(root, "hits")
    assert len(markers) == 2
    for marker in markers:
        marker.unlink()
    flow.run(caches=store)
    assert _files(root, "hits") == []  # hit again within the hour: no write
    other = ResultCacheStore(LocalResult(dir=str(root)))  # as another process
    flow.run(caches=other)
    assert len(_files(root, "hits")) == 2
    assert all(i.last_hit is not None for i in other.entries())


def test_entries_keep_their_code_components_and_indexes_do_not(tmp_path):
    import json

    root = tmp_path / "cache"
    store = ResultCacheStore(LocalResult(dir=str(root)))

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs_and_code)
    def coded(x):
        return x

    with Flow("coded") as flow:
        ref = coded(1)
    flow.run(caches=store)
    assert flow.run(caches=store).result[ref].is_cached()  # builds the index
    (entry,) = _files(root, "entries")
    assert "coded" in json.loads(entry.read_text())["code"]
    (index,) = [p for p in _files(root, "inputs")]
    assert all("code" not in doc for doc in json.loads(index.read_text())["entries"])
