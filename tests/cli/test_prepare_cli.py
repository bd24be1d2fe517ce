"""`edgeret watch --vlm` and `edgeret encode-tokens` as a user runs them: real processes, generated models."""

import json
import signal
import subprocess
import sys
import time

from edgeret.library import Library
from edgeret.rerankers import open_mllm
from edgeret.testing.photos import make_photo


def _stored(lib_dir, vlm) -> tuple[int, int]:
    with Library(lib_dir) as lib:
        rr = open_mllm(lib, vlm=vlm[0], mmproj=vlm[1], threads=1)
        try:
            return len(rr.store), len(lib.photos())
        finally:
            rr.close()


def _edgeret(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "edgeret.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_watch_vlm_prepares_every_photo_and_each_new_one(indexed, photos, tiny_vlm):
    model, mmproj = tiny_vlm
    proc = _edgeret("watch", "--library", indexed, "--quiet", "0.2", "--threads", "1", "--json",
                    "--vlm", model, "--mmproj", mmproj)
    try:
        def until(pred):
            end = time.monotonic() + 120
            while time.monotonic() < end:
                d = json.loads(proc.stdout.readline())
                if pred(d):
                    return d
            raise AssertionError("timed out")

        done = until(lambda d: d.get("visual_tokens", {}).get("state") == "done")["visual_tokens"]
        assert done["ready"] == done["total"] == 13
        make_photo(photos / "b" / "fresh.jpg", seed=4242)
        until(lambda d: d.get("indexed") == 1)
        until(lambda d: d.get("visual_tokens", {}).get("state") == "done" and d["visual_tokens"]["ready"] == 14)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _stored(indexed, tiny_vlm) == (14, 14)


def test_encode_tokens_resumes_after_a_kill_and_takes_limit_and_order(indexed, tiny_vlm):
    model, mmproj = tiny_vlm
    common = ["encode-tokens", "--library", indexed, "--vlm", model, "--mmproj", mmproj, "--threads", "1"]
    first = _edgeret(*common, "--limit", "4", "--order", "path", "--json")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out) == {"visual_tokens_encoded": 4, "visual_tokens_stored": 4, "photos": 13}
    assert _stored(indexed, tiny_vlm) == (4, 13)

    proc = _edgeret(*common)  # killed part-way: whatever it stored stays
    while _stored(indexed, tiny_vlm)[0] < 6:
        time.sleep(0.05)
    proc.kill()
    proc.wait(30)
    kept = _stored(indexed, tiny_vlm)[0]
    assert kept >= 6

    last = _edgeret(*common)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    assert out.strip() == f"visual tokens: encoded {13 - kept}, stored 13; Re-ranking ready for 13 of 13 photos"
