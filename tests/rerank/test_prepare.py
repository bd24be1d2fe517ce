"""Preparing visual tokens ahead of queries: order, limit, resume, pause, and the background process."""

import os
import threading
import time

import numpy as np
import pytest

from edgeret.decode import decode
from edgeret.library import Library
from edgeret.prepare import PrepareStatus, format_duration, neighbour_counts, ordered, pending, prepare
from edgeret.prepare_bg import BackgroundPreparation
from edgeret.query import run_query
from edgeret.rerankers import open_mllm
from edgeret.testing.photos import make_photo


def test_status_line():
    assert PrepareStatus(120, 1000, "running", 2520).text() == "Re-ranking ready for 120 of 1,000 photos · ETA 42 min"
    assert PrepareStatus(3, 9, "paused", 10).text().endswith("· paused")
    assert PrepareStatus(9, 9, "done").text() == "Re-ranking ready for 9 of 9 photos"
    assert format_duration(3 * 3600 + 300) == "3 h 05 min" and format_duration(40) == "40 s"


def test_neighbours_order_puts_the_most_frequent_candidates_first(mllm):
    lib, rr = mllm
    counts = neighbour_counts(lib, k=3)
    keys, matrix = lib.catalog.vectors()
    sims = matrix @ matrix.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :3]
    expected = np.bincount(top.ravel(), minlength=len(keys))
    assert [counts[int(k)] for k in keys] == expected.tolist()
    order = [k for k, _ in ordered(lib, lib.photos(), "neighbours")]
    by_count = [neighbour_counts(lib)[k] for k in order]
    assert by_count == sorted(by_count, reverse=True)
    assert [k for k, _ in ordered(lib, lib.photos(), "path")] == [k for k, _ in lib.photos()]


def test_limit_then_resume_prepares_every_photo_once(mllm):
    lib, rr = mllm
    seen = []
    assert prepare(lib, rr, limit=5, progress=seen.append) == 5
    assert len(rr.store) == 5 and seen[-1].state == "stopped" and seen[-1].ready == 5
    assert seen[-1].text().startswith(f"Re-ranking ready for 5 of {len(lib.photos())} photos")
    done = rr.store.keys()
    first = {k: rr.store.get(k).chunks[0].copy() for k in done}
    assert prepare(lib, rr, progress=seen.append) == len(lib.photos()) - 5  # a new run: only the rest
    assert seen[-1].state == "done" and seen[-1].ready == seen[-1].total == len(rr.store) == len(lib.photos())
    assert all(np.array_equal(rr.store.get(k).chunks[0], v) for k, v in first.items())  # kept, not redone
    assert pending(lib, rr.store) == [] and prepare(lib, rr) == 0


def test_cancel_and_pause_stop_between_photos(mllm):
    lib, rr = mllm
    states = []
    assert prepare(lib, rr, progress=states.append, cancel=lambda: len(states) > 3) == 3
    pause = threading.Event()
    pause.set()
    threading.Timer(0.5, pause.clear).start()
    t = time.monotonic()
    prepare(lib, rr, limit=1, progress=states.append, paused=pause.is_set)
    assert time.monotonic() - t >= 0.5 and "paused" in [s.state for s in states]


def _wait(pred, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _background(indexed, tiny_vlm, **kw):
    model, mmproj = tiny_vlm
    seen, ended = [], []
    bg = BackgroundPreparation(indexed, vlm=str(model), mmproj=str(mmproj), threads=1, on_status=seen.append,
                               on_exit=lambda code, msg: ended.append((code, msg)), **kw)
    return bg, seen, ended


def test_background_process_prepares_every_photo_and_a_restart_resumes(indexed, tiny_vlm, photos):
    with Library(indexed) as lib:
        n = len(lib.photos())
    bg, seen, ended = _background(indexed, tiny_vlm)
    bg.start()
    assert _wait(lambda: seen and seen[-1].ready >= 4)
    bg.stop()  # mid-run: stops after the photo in flight
    assert ended and ended[0][0] == 0
    stopped_at = seen[-1].ready
    assert 4 <= stopped_at <= n

    bg, seen, ended = _background(indexed, tiny_vlm)
    bg.start()
    assert _wait(lambda: seen and seen[-1].state == "done")
    assert seen[0].ready >= stopped_at and seen[-1].ready == seen[-1].total == n  # carried on, nothing redone
    for i in range(2):  # new photos, indexed while it waits: a wake prepares them too
        make_photo(photos / "new" / f"n{i}.jpg", seed=500 + i)
    with Library(indexed, writable=True) as lib:
        lib.index(threads=1)
    bg.wake()
    assert _wait(lambda: seen[-1].state == "done" and seen[-1].total == n + 2 and seen[-1].ready == n + 2)
    bg.stop()
    model, mmproj = tiny_vlm
    with Library(indexed) as lib:
        rr = open_mllm(lib, vlm=model, mmproj=mmproj, threads=1)
        try:
            assert len(rr.store) == n + 2
        finally:
            rr.close()


def test_background_pause_holds_it_between_photos(indexed, tiny_vlm):
    bg, seen, _ = _background(indexed, tiny_vlm)
    bg.start()
    bg.pause()  # at once: with tiny models a later pause can arrive after the last photo and find nothing to hold
    assert _wait(lambda: bool(seen) and seen[-1].state == "paused")
    held = seen[-1].ready
    time.sleep(1.0)
    assert seen[-1].ready == held
    bg.resume()
    assert _wait(lambda: seen[-1].state == "done")
    bg.stop()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_background_process_runs_at_idle_priority(indexed, tiny_vlm, monkeypatch):
    monkeypatch.setenv("EDGERET_PREPARE_PRIORITY", "idle")
    bg, seen, _ = _background(indexed, tiny_vlm)
    bg.start()
    try:
        assert _wait(lambda: bool(seen))
        assert os.sched_getscheduler(bg._proc.pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, bg._proc.pid) == 19
    finally:
        bg.stop()


def test_a_query_during_preparation_returns_the_right_results(indexed, tiny_vlm):
    model, mmproj = tiny_vlm
    bg, seen, _ = _background(indexed, tiny_vlm)
    with Library(indexed) as lib:
        rr = open_mllm(lib, vlm=model, mmproj=mmproj, threads=1)
        try:
            hits = lib.search_vectors(lib.vector_of(3)[None], k=8)[0]
            bg.start()
            assert _wait(lambda: bool(seen))
            during = list(run_query(hits, decode(hits[0].path), rr))[-1]
            assert _wait(lambda: seen[-1].state == "done")
            after = list(run_query(hits, decode(hits[0].path), rr))[-1]
        finally:
            bg.stop()
            rr.close()
    assert [r.key for r in during] == [r.key for r in after]
    assert [r.p_same for r in during] == pytest.approx([r.p_same for r in after], abs=2e-3)


def test_a_model_that_will_not_load_is_reported(indexed, tmp_path):
    missing = tmp_path / "none.gguf"
    ended = []
    bg = BackgroundPreparation(indexed, vlm=str(missing), mmproj=str(missing),
                               on_exit=lambda code, msg: ended.append((code, msg)))
    bg.start()
    assert _wait(lambda: bool(ended))
    assert ended[0][0] != 0 and "none.gguf" in ended[0][1]
