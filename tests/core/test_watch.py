"""The watcher with real file-system events (watchdog/inotify) on a temporary folder and a real library."""

import os
import shutil
import time

import numpy as np
import pytest

from edgeret.library import Library
from edgeret.rerank.mllm import VisualTokens
from edgeret.rerank.tokens import TokenStore
from edgeret.testing.photos import make_photo
from edgeret.watch import Watcher


def _wait_for(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _key(lib_dir, path):
    with Library(lib_dir) as lib:
        return lib.catalog.id_for_path(str(path))


def test_new_photo_becomes_searchable_and_reads_do_not_wake_the_watcher(indexed, photos):
    batches = []
    with Watcher(indexed, quiet=0.3, max_delay=3, catch_up=False, threads=1, on_batch=batches.append) as w:
        assert w.roots == [photos]
        t0 = time.monotonic()
        new = make_photo(photos / "a" / "new.jpg", seed=777)
        assert _wait_for(lambda: _key(indexed, new) is not None), "the new photo never reached the catalog"
        latency = time.monotonic() - t0
        with Library(indexed) as lib:
            key = lib.catalog.id_for_path(str(new))
            assert lib.search_vectors(lib.vector_of(key), 1)[0][0].key == key  # visible in search
        # the indexer's own reads (open/close without write) must not trigger another run
        assert w.wait_idle(10)
        for p in photos.rglob("*.jpg"):
            p.read_bytes()
        time.sleep(1.0)
        assert len(batches) == 1 and batches[0].report["indexed"] == 1
    assert latency < 10


def test_move_keeps_row_vector_and_visual_tokens_and_delete_removes(indexed, photos):
    old, gone = photos / "a" / "img02.jpg", photos / "b" / "img09.jpg"
    key = _key(indexed, old)
    with Library(indexed) as lib:
        vec = lib.vector_of(key)
    tokens = VisualTokens([np.arange(12, dtype=np.float32).reshape(3, 4)], (64, 48))
    with TokenStore(indexed / "tokens-test.sqlite", "test-model") as store:
        store.put(key, tokens)
    batches = []
    with Watcher(indexed, quiet=0.3, max_delay=3, catch_up=False, threads=1, on_batch=batches.append) as w:
        (photos / "c").mkdir()
        os.rename(old, photos / "c" / "renamed.jpg")
        gone.unlink()
        assert _wait_for(lambda: _key(indexed, gone) is None and _key(indexed, photos / "c" / "renamed.jpg"))
        assert w.wait_idle(10)
    assert _key(indexed, photos / "c" / "renamed.jpg") == key
    with Library(indexed) as lib:
        np.testing.assert_array_equal(lib.vector_of(key), vec)
    with TokenStore(indexed / "tokens-test.sqlite", "test-model") as store:
        np.testing.assert_array_equal(store.get(key).chunks[0], tokens.chunks[0])  # same key: tokens still served
    total = {k: sum(b.report[k] for b in batches) for k in ("moved", "removed", "indexed")}
    assert total == {"moved": 1, "removed": 1, "indexed": 0}  # nothing re-encoded


def test_a_burst_of_copies_is_applied_in_few_batches(indexed, photos, tmp_path):
    src = tmp_path / "incoming"
    for i in range(40):
        make_photo(src / f"n{i:03d}.jpg", seed=1000 + i, size=(96, 72))
    batches = []
    with Watcher(indexed, quiet=0.5, max_delay=5, catch_up=False, threads=1, on_batch=batches.append) as w:
        shutil.copytree(src, photos / "burst")
        assert _wait_for(lambda: _key(indexed, photos / "burst" / "n039.jpg") is not None, 20)
        assert w.wait_idle(10)
    with Library(indexed) as lib:
        assert len(lib.photos(photos / "burst")) == 40
    assert sum(b.events for b in batches) >= 40  # each file produced events ...
    assert len(batches) <= 2  # ... but they were applied in one or two index runs


def test_a_busy_library_is_retried_not_fatal(indexed, photos):
    errors, batches = [], []
    watcher = Watcher(indexed, quiet=0.2, max_delay=2, retry=0.5, catch_up=False, threads=1,
                      on_batch=batches.append, on_error=errors.append)
    holder = Library(indexed, writable=True)  # another writer, e.g. `edgeret index`
    try:
        watcher.start()
        new = make_photo(photos / "b" / "while-busy.jpg", seed=4242)
        time.sleep(1.5)  # several attempts have met the lock by now
        assert _key(indexed, new) is None and not batches
    finally:
        holder.close()
    try:
        assert _wait_for(lambda: _key(indexed, new) is not None, 10)
    finally:
        watcher.stop()
    assert not errors and len(batches) == 1


def test_an_unavailable_folder_never_empties_the_library(indexed, photos, tmp_path):
    with Library(indexed) as lib:
        count = lib.catalog.vector_count()
    aside = tmp_path / "unmounted"
    photos.rename(aside)  # what an unplugged drive looks like to the indexer
    errors, batches = [], []
    with Watcher(indexed, quiet=0.1, max_delay=0.5, retry=0.2, threads=1, on_error=errors.append,
                 on_batch=batches.append):
        assert _wait_for(lambda: errors, 10)
        with Library(indexed) as lib:
            assert lib.catalog.vector_count() == count and not batches
        aside.rename(photos)  # back: the next attempt goes through and finds nothing changed
        assert _wait_for(lambda: batches, 10)
    assert "not available" in str(errors[0]) and batches[0].report["removed"] == 0


@pytest.mark.timeout(60)  # a silent child would otherwise block readline() until the suite's 600 s limit
def test_cli_watch_runs_until_interrupted(indexed, photos):
    import signal
    import subprocess
    import sys

    code = (
        "import argparse, sys\n"
        "from edgeret.cli import watch\n"
        "p = argparse.ArgumentParser(); watch.add_parser(p.add_subparsers(dest='c'))\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "watch", "--library", str(indexed), "--quiet", "0.2", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().startswith("watching ")
        first = proc.stdout.readline()  # the catch-up run at start: nothing changed
        assert "indexed 0" in first, first
        make_photo(photos / "b" / "via-cli.jpg", seed=31337)
        line = proc.stdout.readline()
        assert "indexed 1" in line, line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
