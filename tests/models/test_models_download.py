"""pull(): real HTTP against a hub on 127.0.0.1 — normal, resumed, tampered, failing, slow and cancelled downloads."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from edgeret import models
from edgeret.errors import Cancelled, ModelError, ModelMissing, NetworkError
from edgeret.settings import ENV_HUB_URL, models_dir
from tests.helpers.hub import Hub, hub_path, registry_toml, sha256, tiny_gguf

NAME = "vlm"


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


@pytest.fixture
def files(tmp_path) -> dict[str, bytes]:
    """A re-ranker's two files: real GGUFs of ~400 kB and ~200 kB."""
    text = tiny_gguf(tmp_path / "src" / "model.gguf", "llama", 100_000, seed=1).read_bytes()
    proj = tiny_gguf(tmp_path / "src" / "mmproj.gguf", "clip", 50_000, seed=2).read_bytes()
    return {"model.gguf": text, "mmproj.gguf": proj}


def make_registry(tmp_path: Path, files: dict[str, bytes], digests: dict[str, str] | None = None):
    digests = digests or {}
    spec = {
        NAME: {
            "role": "reranker",
            "files": [(n, len(b), digests.get(n, sha256(b))) for n, b in files.items()],
            "reranker": {
                "model": "model.gguf",
                "mmproj": "mmproj.gguf",
                "projector": "idefics3",
                "image_max_tokens": 64,
            },
        }
    }
    path = tmp_path / "registry.toml"
    path.write_text(registry_toml(spec), "utf-8")
    return models.load_registry(path)


def serve(hub: Hub, files: dict[str, bytes], **kw) -> dict:
    return {n: hub.add(hub_path(NAME, n), b, **kw) for n, b in files.items()}


def assert_nothing_installed(root: Path) -> None:
    assert not (root / NAME).exists()
    staging = root / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_normal_download_installs_atomically(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    serve(hub, files)
    root = models_dir()
    seen = []

    def progress(p: models.Progress) -> None:
        assert not (root / NAME).exists(), "the model became visible before every file was verified"
        seen.append(p)

    folder = models.pull(NAME, registry=reg, hub=hub.url, progress=progress)
    assert folder == root / NAME
    for n, b in files.items():
        assert (folder / n).read_bytes() == b
    manifest = json.loads((folder / models.MANIFEST).read_text())
    assert manifest["files"]["model.gguf"]["sha256"] == sha256(files["model.gguf"])
    assert json.loads((folder / "reranker.json").read_text())["projector"] == "idefics3"
    assert seen[-1].done == seen[-1].total == sum(map(len, files.values()))
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert models.resolve(NAME, "reranker", registry=reg) == folder
    model, mmproj, cfg = models.reranker_files(folder)
    assert model.name == "model.gguf" and mmproj.name == "mmproj.gguf" and cfg["image_max_tokens"] == 64
    assert not (root / ".partial" / NAME).exists()
    # Installed: a second pull does not touch the network.
    hub.close()
    assert models.pull(NAME, registry=reg, hub=hub.url) == folder


def test_hub_url_from_environment(tmp_path, hub, files, monkeypatch):
    reg = make_registry(tmp_path, files)
    serve(hub, files)
    monkeypatch.setenv(ENV_HUB_URL, hub.url)
    assert models.pull(NAME, registry=reg).is_dir()


def test_interrupted_download_resumes_on_next_pull(tmp_path, hub, files, monkeypatch):
    reg = make_registry(tmp_path, files)
    routes = serve(hub, files)
    routes["model.gguf"].cut_after = 150_000
    root = models_dir()
    with pytest.raises(NetworkError, match="resume") as cut:
        models.pull(NAME, registry=reg, hub=hub.url, retries=0)
    assert (cut.value.model, cut.value.file, cut.value.kept, cut.value.offline) == (NAME, "model.gguf", 150_000, False)
    assert models.partial_bytes(NAME) == 150_000  # what the app offers to resume from
    assert_nothing_installed(root)
    with pytest.raises(ModelMissing):
        models.resolve(NAME, "reranker", registry=reg)
    part = root / ".partial" / NAME / "model.gguf.part"
    assert part.stat().st_size == 150_000
    folder = models.pull(NAME, registry=reg, hub=hub.url, retries=0)
    assert routes["model.gguf"].requests == [None, "bytes=150000-"]
    assert (folder / "model.gguf").read_bytes() == files["model.gguf"]


def test_dropped_connection_is_resumed_within_one_pull(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    routes = serve(hub, files, cut_after=100_000, cut_times=2)
    folder = models.pull(NAME, registry=reg, hub=hub.url, retries=3)
    assert routes["model.gguf"].requests == [None, "bytes=100000-", "bytes=200000-"]
    assert (folder / "model.gguf").read_bytes() == files["model.gguf"]


def test_server_ignoring_range_restarts_cleanly(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    serve(hub, files, cut_after=120_000, ignore_range=True)
    folder = models.pull(NAME, registry=reg, hub=hub.url, retries=1)
    assert (folder / "model.gguf").read_bytes() == files["model.gguf"]


def test_wrong_hash_is_refused_and_nothing_installed(tmp_path, hub, files):
    reg = make_registry(tmp_path, files, digests={"mmproj.gguf": "0" * 64})
    serve(hub, files)
    root = models_dir()
    with pytest.raises(ModelError, match="sha256 mismatch"):
        models.pull(NAME, registry=reg, hub=hub.url)
    assert_nothing_installed(root)
    assert not (root / ".partial" / NAME / "mmproj.gguf.part").exists(), "a bad file must not be resumed from"


def test_tampered_file_with_right_size_is_refused(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    bad = dict(files)
    bad["model.gguf"] = files["model.gguf"][:-1] + bytes([files["model.gguf"][-1] ^ 1])
    serve(hub, bad)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        models.pull(NAME, registry=reg, hub=hub.url)
    assert_nothing_installed(models_dir())


@pytest.mark.parametrize(
    ("status", "words"),
    [(503, "HTTP 503, server error"), (404, "HTTP 404, not found"), (403, "HTTP 403, access denied")],
)
def test_server_errors_are_clear(tmp_path, hub, files, status, words):
    reg = make_registry(tmp_path, files)
    serve(hub, files, status=status)
    with pytest.raises(ModelError, match=words):
        models.pull(NAME, registry=reg, hub=hub.url)
    assert_nothing_installed(models_dir())


def test_stalled_server_times_out(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    serve(hub, files, delay=5.0)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="stopped sending data"):
        models.pull(NAME, registry=reg, hub=hub.url, timeout=(2.0, 0.5), retries=0)
    assert time.monotonic() - t0 < 3.0
    assert_nothing_installed(models_dir())


def test_unreachable_hub_fails_fast_and_names_import(tmp_path, files):
    reg = make_registry(tmp_path, files)
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(NetworkError, match="models import") as failed:
        models.pull(NAME, registry=reg, hub=f"http://127.0.0.1:{port}", retries=1)
    assert time.monotonic() - t0 < 5.0
    assert failed.value.offline and failed.value.kept == 0 and failed.value.url.startswith("http://127.0.0.1")
    assert_nothing_installed(models_dir())


def test_size_disagreeing_with_registry_is_refused(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    longer = {n: b + b"extra" for n, b in files.items()}
    serve(hub, longer)
    with pytest.raises(ModelError, match="registry says"):
        models.pull(NAME, registry=reg, hub=hub.url)
    assert_nothing_installed(models_dir())


def test_unverified_needs_trust_and_records_hash(tmp_path, hub, files):
    reg = make_registry(tmp_path, files, digests={"model.gguf": "unverified"})
    route = serve(hub, files)
    with pytest.raises(ModelError, match="--trust-unverified"):
        models.pull(NAME, registry=reg, hub=hub.url)
    assert route["model.gguf"].requests == [], "nothing may be downloaded before the user agrees"
    folder = models.pull(NAME, registry=reg, hub=hub.url, trust_unverified=True)
    manifest = json.loads((folder / models.MANIFEST).read_text())["files"]["model.gguf"]
    assert manifest == {"size": len(files["model.gguf"]), "sha256": sha256(files["model.gguf"]), "verified": False}


def test_hostile_file_with_matching_hash_is_refused_by_header_check(tmp_path, hub, files):
    junk = dict(files)
    junk["model.gguf"] = os.urandom(4096)
    reg = make_registry(tmp_path, junk)  # the registry "agrees" with the junk: the header check must still catch it
    serve(hub, junk)
    with pytest.raises(ModelError, match="not a GGUF file"):
        models.pull(NAME, registry=reg, hub=hub.url)
    assert_nothing_installed(models_dir())


def test_cancel_keeps_partial_for_resume(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    serve(hub, files)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        models.pull(NAME, registry=reg, hub=hub.url, cancel=cancel)
    assert_nothing_installed(models_dir())
    assert (models_dir() / ".partial" / NAME / "model.gguf.part").exists()
    assert models.pull(NAME, registry=reg, hub=hub.url).is_dir()


def test_reinstall_with_force_replaces_folder(tmp_path, hub, files):
    reg = make_registry(tmp_path, files)
    serve(hub, files)
    folder = models.pull(NAME, registry=reg, hub=hub.url)
    (folder / "stray.txt").write_text("x")
    assert models.pull(NAME, registry=reg, hub=hub.url, force=True) == folder
    assert not (folder / "stray.txt").exists()
    assert models.remove(NAME, registry=reg) and not folder.exists()
