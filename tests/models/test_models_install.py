"""import_model, verify, resolve and list_models on real files; the shipped registry; the `edgeret models` CLI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeret import models
from edgeret.cli import models as cli_models
from edgeret.errors import ModelError, ModelMissing
from edgeret.rerank.weights import COPIES
from edgeret.settings import ENV_HUB_URL, ENV_REGISTRY, models_dir
from tests.helpers.hub import Hub, hub_path, registry_toml, sha256, tiny_gguf

ROOT = Path(__file__).resolve().parents[2]  # the checkout


@pytest.fixture
def source(tmp_path) -> Path:
    """Files of two models as a user would copy them: a re-ranker pair and a second model sharing a name."""
    src = tmp_path / "usb"
    tiny_gguf(src / "model.gguf", "llama", 20_000, seed=1)
    tiny_gguf(src / "mmproj.gguf", "clip", 10_000, seed=2)
    return src


@pytest.fixture
def reg(tmp_path, source):
    b = {p.name: p.read_bytes() for p in source.iterdir()}
    other = tiny_gguf(tmp_path / "other" / "model.gguf", "llama", 30_000, seed=3).read_bytes()
    spec = {
        "vlm": {
            "role": "reranker",
            "files": [(n, len(v), sha256(v)) for n, v in sorted(b.items())],
            "reranker": {"model": "model.gguf", "mmproj": "mmproj.gguf", "projector": "idefics3"},
        },
        "textonly": {"role": "reranker", "files": [("model.gguf", len(other), sha256(other))]},
    }
    path = tmp_path / "registry.toml"
    path.write_text(registry_toml(spec), "utf-8")
    return path


def test_import_folder_recognises_model_and_installs(source, reg):
    registry = models.load_registry(reg)
    folder = models.import_model(source, registry=registry)
    assert folder == models_dir() / "vlm"
    assert (folder / "model.gguf").read_bytes() == (source / "model.gguf").read_bytes()
    assert (source / "model.gguf").exists(), "import copies; the user's files stay"
    assert models.resolve("vlm", "reranker", registry=registry) == folder
    assert [r.ok for r in models.verify(registry=registry)] == [True]


def test_import_single_file_and_repo_layout(tmp_path, source, reg):
    registry = models.load_registry(reg)
    assert models.import_model(source / "mmproj.gguf", registry=registry).name == "vlm"
    repo_layout = tmp_path / "clone" / "vlm"  # files under their hub paths, as a git clone would have them
    repo_layout.mkdir(parents=True)
    for p in source.iterdir():
        shutil.copy(p, repo_layout / p.name)
    models.remove("vlm", registry=registry)
    assert models.import_model(tmp_path / "clone", "vlm", registry=registry).is_dir()


def test_import_refuses_tampered_file(source, reg):
    registry = models.load_registry(reg)
    data = bytearray((source / "mmproj.gguf").read_bytes())
    data[-1] ^= 0xFF
    (source / "mmproj.gguf").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        models.import_model(source, "vlm", registry=registry)
    assert not (models_dir() / "vlm").exists()
    assert not any((models_dir() / ".staging").iterdir())


def test_import_errors_name_what_is_missing(tmp_path, source, reg):
    registry = models.load_registry(reg)
    (source / "mmproj.gguf").unlink()
    with pytest.raises(ModelMissing, match=r"mmproj\.gguf not found"):
        models.import_model(source, "vlm", registry=registry)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="No registry model's files"):
        models.import_model(empty, registry=registry)
    with pytest.raises(ModelMissing, match="does not exist"):
        models.import_model(tmp_path / "nowhere", registry=registry)


def test_import_size_disambiguates_same_file_names(tmp_path, reg):
    registry = models.load_registry(reg)
    other = tmp_path / "other"
    assert models.import_model(other / "model.gguf", registry=registry).name == "textonly"


def test_verify_detects_tampering_truncation_and_loss(source, reg):
    registry = models.load_registry(reg)
    folder = models.import_model(source, registry=registry)
    model = folder / "model.gguf"
    data = bytearray(model.read_bytes())
    data[100] ^= 1
    model.write_bytes(bytes(data))
    [r] = models.verify(["vlm"], registry=registry)
    assert not r.ok and "sha256" in r.problems[0]
    model.write_bytes(bytes(data[:-10]))
    assert "size" in models.verify(["vlm"], registry=registry)[0].problems[0]
    model.unlink()
    assert models.verify(["vlm"], registry=registry)[0].problems == ["model.gguf: missing"]
    assert models.verify(["textonly"], registry=registry)[0].problems == ["not installed"]


def test_resolve_paths_and_errors(tmp_path, reg, tiny_encoder):
    registry = models.load_registry(reg)
    assert models.resolve(str(tiny_encoder), "encoder", registry=registry) == tiny_encoder.resolve()
    with pytest.raises(ModelError, match="preprocess.json missing"):
        models.resolve(str(tmp_path), "encoder", registry=registry)
    with pytest.raises(ModelMissing, match="No such model"):
        models.resolve(str(tmp_path / "gone" / "model.onnx"), "encoder", registry=registry)
    with pytest.raises(ModelError, match="Unknown encoder 'nope'"):
        models.resolve("nope", "encoder", registry=registry)
    with pytest.raises(ModelError, match="registered as a reranker model, not as a encoder"):
        models.resolve("vlm", "encoder", registry=registry)


def test_missing_model_fails_fast_offline_and_names_files_and_commands(reg):
    registry = models.load_registry(reg)
    t0 = time.monotonic()
    with pytest.raises(ModelMissing) as e:
        models.resolve("vlm", "reranker", registry=registry)
    assert time.monotonic() - t0 < 0.5
    msg = str(e.value)
    for needle in ("model.gguf", "mmproj.gguf", "edgeret models pull vlm", "edgeret models import PATH"):
        assert needle in msg


def test_list_models_reports_install_state(source, reg):
    registry = models.load_registry(reg)
    before = {r["name"]: r for r in models.list_models(registry)}
    assert not before["vlm"]["installed"] and before["vlm"]["size"] > 0
    models.import_model(source, registry=registry)
    after = {r["name"]: r for r in models.list_models(registry)}
    assert after["vlm"]["installed"] and after["vlm"]["path"] == str(models_dir() / "vlm")


# ------------------------------------------------------------------------------------------ shipped registry


def test_the_registry_is_one_real_package_file():
    """Not a symlink (checkouts without symlink support broke it): the package's own file, what wheels ship."""
    from importlib import resources

    shipped = Path(str(resources.files("edgeret.models").joinpath("registry.toml")))
    assert shipped.is_file() and not shipped.is_symlink()
    assert models.load_registry()  # read from there when EDGERET_REGISTRY is unset
    tracked = subprocess.run(["git", "ls-files", "-s", "edgeret/models/registry.toml"], cwd=ROOT, capture_output=True,
                             text=True)
    if tracked.returncode == 0 and tracked.stdout:
        assert tracked.stdout.startswith("100644 "), tracked.stdout  # 120000 would be a symlink


def test_shipped_registry_is_complete_and_well_formed():
    reg = models.load_registry()
    for name in ("clip-vit-b32", "clip-vit-b32-text", "smolvlm-256m", "smolvlm-500m"):
        assert name in reg
    assert models.default_model("encoder", reg).name == "clip-vit-b32"
    assert models.default_model("reranker", reg).name == "smolvlm-256m"
    assert {"qwen2.5-vl-3b", "gemma-3-4b"} & set(reg)
    assert len([m for m in reg.values() if m.role == "encoder"]) >= 2
    for m in reg.values():
        assert m.files and m.licence != "unknown"
        if m.verified:
            assert m.revision != "main", f"{m.name}: published hashes belong to a pinned revision"
            assert all(f.size > 0 for f in m.files)
        if m.role == "encoder":
            pre = m.config["preprocess"]
            assert pre["resize"] in ("shortest_edge_center_crop", "stretch", "longest_edge_pad", "longest_edge")
            assert len(pre["mean"]) == len(pre["std"]) == 3 and pre["output"] in ("embedding", "feature_map")
        if m.role == "reranker":
            cfg = m.config["reranker"]
            assert {cfg["model"], cfg["mmproj"]} == {f.name for f in m.files}
            from edgeret.rerank.prompts import PROMPTS

            assert cfg["prompt"] in PROMPTS and cfg["image_max_tokens"] > 0
    assert reg["smolvlm-256m"].config["reranker"]["projector"] == "idefics3"
    assert reg["smolvlm-256m"].url(reg["smolvlm-256m"].files[0]).startswith("https://huggingface.co/ggml-org/")


def test_bad_registry_is_a_model_error(tmp_path):
    bad = tmp_path / "r.toml"
    bad.write_text('[models.x]\nrole = "encoder"\n', "utf-8")
    with pytest.raises(ModelError, match="lacks the 'repo' key"):
        models.load_registry(bad)
    bad.write_text("[models.x\n", "utf-8")
    with pytest.raises(ModelError, match="malformed"):
        models.load_registry(bad)


# ------------------------------------------------------------------------------------------------------ CLI


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edgeret")
    cli_models.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_pull_list_verify_remove(tmp_path, reg, monkeypatch, capsys):
    hub = Hub()
    try:
        registry = models.load_registry(reg)
        for f in registry["vlm"].files:
            hub.add(hub_path("vlm", f.name), (tmp_path / "usb" / f.name).read_bytes())
        monkeypatch.setenv(ENV_REGISTRY, str(reg))
        monkeypatch.setenv(ENV_HUB_URL, hub.url)
        assert run_cli("models", "pull", "vlm", "--no-progress") == 0
        assert "installed vlm" in capsys.readouterr().out
        assert run_cli("models", "list", "--json") == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["vlm"]["installed"] and not rows["textonly"]["installed"]
        assert run_cli("models", "verify") == 0
        assert "ok   vlm" in capsys.readouterr().out
        (models_dir() / "vlm" / "mmproj.gguf").write_bytes(b"GGUF")
        assert run_cli("models", "verify", "--json") == ModelError.exit_code
        assert not json.loads(capsys.readouterr().out)[0]["ok"]
        copies = models_dir() / COPIES  # f32 copies the re-ranker made of the model's GGUFs go with it
        copies.mkdir()
        made = [copies / f"{g.stem}-0123abcd.f32.gguf" for g in (models_dir() / "vlm").glob("*.gguf")]
        for c in [*made, copies / "other-0123abcd.f32.gguf"]:
            c.write_bytes(b"GGUF")
        assert run_cli("models", "remove", "vlm") == 0
        assert made and not any(c.exists() for c in made) and (copies / "other-0123abcd.f32.gguf").exists()
    finally:
        hub.close()


def test_cli_missing_model_exits_with_message(tmp_path, reg):
    """End to end through the installed entry point: no network, a clear message, the ModelMissing exit code."""
    env = dict(os.environ, EDGERET_REGISTRY=str(reg), EDGERET_HUB_URL="http://127.0.0.1:9")
    code = "import sys; from edgeret.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(
        [sys.executable, "-c", code, "models", "import", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == ModelMissing.exit_code, r.stderr
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-c", code, "models", "pull", "vlm", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == ModelError.exit_code and "models import" in r.stderr and "Traceback" not in r.stderr
