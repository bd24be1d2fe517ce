"""The model registry (registry.toml) and name → installed folder resolution."""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgeret.errors import ModelError, ModelMissing
from edgeret.settings import hub_url, models_dir, registry_override

log = logging.getLogger(__name__)

DEFAULT_HUB = "https://huggingface.co"
UNVERIFIED = "unverified"
MANIFEST = "edgeret-model.json"
ROLES = ("encoder", "text-encoder", "reranker")
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
CHUNK = 1 << 20
# Generated JSON files per registry table: the encoder/re-ranker code reads these, not the registry.
_GENERATED = {"preprocess": "preprocess.json", "reranker": "reranker.json", "text": "text.json"}


# ----------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name inside the installed folder
    path: str  # path inside the hub repository
    size: int  # exact bytes; 0 when not published
    sha256: str | None  # None when no published hash is known

    @property
    def verified(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    role: str
    description: str
    licence: str
    repo: str
    revision: str
    files: tuple[ModelFile, ...]
    default: bool = False
    config: Mapping[str, dict] = field(default_factory=dict)  # preprocess / reranker / text tables

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def verified(self) -> bool:
        return all(f.verified for f in self.files)

    def url(self, f: ModelFile, hub: str | None = None) -> str:
        base = (hub or hub_url() or DEFAULT_HUB).rstrip("/")
        return f"{base}/{self.repo}/resolve/{self.revision}/{f.path}"

    def folder(self, root: Path | None = None) -> Path:
        return (root or models_dir()) / self.name

    def source(self, hub: str | None = None) -> str:
        return f"{(hub or hub_url() or DEFAULT_HUB).rstrip('/')}/{self.repo}@{self.revision}"

    def installed(self, root: Path | None = None) -> bool:
        return (self.folder(root) / MANIFEST).is_file()


def _parse_file(model: str, raw: dict) -> ModelFile:
    sha = str(raw.get("sha256", UNVERIFIED)).lower()
    if sha != UNVERIFIED and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ModelError(f"Registry entry {model}: bad sha256 {sha!r} for {raw.get('name')}")
    name = raw["name"]
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"Registry entry {model}: file name {name!r} must be a plain file name")
    return ModelFile(
        name=name, path=raw.get("path", name), size=int(raw.get("size", 0)), sha256=None if sha == UNVERIFIED else sha
    )


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _parse_model(name: str, raw: dict) -> ModelInfo:
    if not _MODEL_NAME.fullmatch(name) or ".." in name:  # the name is a folder under the models folder
        raise ModelError(f"Registry entry {name!r}: a model name is letters, digits, '.', '_' and '-' only")
    try:
        role = raw["role"]
        if role not in ROLES:
            raise ModelError(f"Registry entry {name}: unknown role {role!r}")
        return ModelInfo(
            name=name,
            role=role,
            description=raw.get("description", ""),
            licence=raw.get("licence", "unknown"),
            repo=raw["repo"],
            revision=raw.get("revision", "main"),
            files=tuple(_parse_file(name, f) for f in raw["files"]),
            default=bool(raw.get("default", False)),
            config={k: raw[k] for k in _GENERATED if k in raw},
        )
    except KeyError as e:
        raise ModelError(f"Registry entry {name} lacks the {e.args[0]!r} key") from None


def _registry_text(path: Path | None) -> tuple[str, str]:
    """Find the registry: explicit path, EDGERET_REGISTRY, else the one shipped in this package."""
    if path is None:
        path = registry_override()
    if path is not None:
        return Path(path).read_text("utf-8"), str(path)
    packaged = resources.files(__package__).joinpath("registry.toml")
    if packaged.is_file():
        return packaged.read_text("utf-8"), str(packaged)
    raise ModelError("The model registry (registry.toml) is missing from this installation; reinstall edgeret")


def load_registry(path: str | Path | None = None) -> dict[str, ModelInfo]:
    """Parse the registry into {name: ModelInfo}; raises ModelError on a malformed file."""
    text, where = _registry_text(Path(path) if path else None)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"The model registry {where} is malformed: {e}") from e
    return {name: _parse_model(name, entry) for name, entry in raw.get("models", {}).items()}


def get(name: str, registry: Mapping[str, ModelInfo] | None = None) -> ModelInfo:
    reg = registry if registry is not None else load_registry()
    if name not in reg:
        raise ModelError(f"Unknown model {name!r}. Known models: {', '.join(sorted(reg))}")
    return reg[name]


def default_model(role: str, registry: Mapping[str, ModelInfo] | None = None) -> ModelInfo:
    reg = registry if registry is not None else load_registry()
    for info in reg.values():
        if info.role == role and info.default:
            return info
    raise ModelError(f"The registry names no default {role}")


def list_models(registry: Mapping[str, ModelInfo] | None = None, root: Path | None = None) -> list[dict]:
    """One JSON-ready dict per registry model: name, role, size, licence, installed, path, ..."""
    reg = registry if registry is not None else load_registry()
    root = root or models_dir()
    return [
        {
            "name": m.name,
            "role": m.role,
            "default": m.default,
            "description": m.description,
            "licence": m.licence,
            "size": m.size,
            "verified": m.verified,
            "installed": m.installed(root),
            "path": str(m.folder(root)),
            "files": [f.name for f in m.files],
        }
        for m in reg.values()
    ]


# ---------------------------------------------------------------------------------------------- resolve


def _missing_message(info: ModelInfo, root: Path) -> str:
    files = ", ".join(f.name for f in info.files)
    return (
        f"The {info.role} {info.name!r} is not installed (expected {files} in {info.folder(root)}).\n"
        f"Download it with:   edgeret models pull {info.name}\n"
        f"Without network, copy those files from another machine and run:   edgeret models import PATH"
    )


def _check_folder(path: Path, role: str) -> Path:
    need = {"encoder": ["model.onnx", "preprocess.json"], "text-encoder": ["model.onnx"]}.get(role, [])
    missing = [n for n in need if not (path / n).is_file()]
    if missing:
        raise ModelError(f"{path} is not a usable {role} folder: {', '.join(missing)} missing")
    if role == "reranker" and not (path / "reranker.json").is_file() and not any(path.glob("*.gguf")):
        raise ModelError(f"{path} is not a re-ranker folder: no reranker.json or .gguf files in it")
    return path


def _looks_like_path(spec: str) -> bool:
    return any(sep in spec for sep in ("/", "\\")) or spec.startswith((".", "~")) or spec.endswith((".onnx", ".gguf"))


def resolve(spec: str, role: str, registry: Mapping[str, ModelInfo] | None = None, root: Path | None = None) -> Path:
    """Turn a model spec (a folder/file path, or a registry name) into an installed path. Never touches the network.

    Raises ModelMissing (naming the files and the pull/import commands) when a registry model is not installed,
    ModelError for unknown names, role mismatches and unusable folders.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    root = root or models_dir()
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve() if path.is_file() else _check_folder(path.resolve(), role)
    if _looks_like_path(spec):
        raise ModelMissing(f"No such model file or folder: {path}")
    reg = registry if registry is not None else load_registry()
    info = reg.get(spec)
    if info is None:
        same_role = sorted(n for n, m in reg.items() if m.role == role)
        raise ModelError(f"Unknown {role} {spec!r}: not a path and not in the registry ({', '.join(same_role)})")
    if info.role != role:
        raise ModelError(f"{spec!r} is registered as a {info.role} model, not as a {role} model")
    if not info.installed(root):
        raise ModelMissing(_missing_message(info, root), model=info.name)
    return info.folder(root)


def reranker_files(folder: Path) -> tuple[Path, Path, dict]:
    """(text model GGUF, mmproj GGUF, reranker.json settings) of an installed re-ranker folder."""
    cfg_path = folder / "reranker.json"
    if not cfg_path.is_file():
        raise ModelError(f"{folder} has no reranker.json; pass --vlm and --mmproj explicitly")
    cfg = json.loads(cfg_path.read_text("utf-8"))
    return folder / cfg["model"], folder / cfg["mmproj"], cfg


