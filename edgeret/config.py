"""Settings and paths: defaults < TOML file < environment < command line."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

import platformdirs

APP = "edgeret"
DEFAULT_ENCODER = "clip-vit-b32"


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def models_dir() -> Path:
    """Where models are installed (EDGERET_MODELS overrides the user cache directory)."""
    env = os.environ.get("EDGERET_MODELS")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP)) / "models"


def config_file() -> Path:
    env = os.environ.get("EDGERET_CONFIG")
    return Path(env).expanduser() if env else Path(platformdirs.user_config_dir(APP)) / "config.toml"


@dataclass(frozen=True)
class Settings:
    library: Path
    encoder: str | None = None  # None: the library's own encoder, else DEFAULT_ENCODER
    threads: int = max(1, (os.cpu_count() or 2))
    batch_size: int = 16
    exact_below: int = 50_000  # libraries smaller than this are searched exactly; larger ones through USearch HNSW


def _from_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        raw = tomllib.load(f)
    known = {f.name for f in fields(Settings)}
    return {k: v for k, v in raw.items() if k in known}


def _from_env() -> dict:
    out = {}
    if v := os.environ.get("EDGERET_LIBRARY"):
        out["library"] = v
    if v := os.environ.get("EDGERET_ENCODER"):
        out["encoder"] = v
    if v := os.environ.get("EDGERET_THREADS"):
        out["threads"] = int(v)
    if v := os.environ.get("EDGERET_EXACT_BELOW"):
        out["exact_below"] = int(v)
    return out


def load_settings(**overrides) -> Settings:
    """Resolve settings; `overrides` are command-line values, None meaning "not given"."""
    merged: dict = {"library": data_dir() / "library"}
    merged |= _from_file(config_file())
    merged |= _from_env()
    merged |= {k: v for k, v in overrides.items() if v is not None}
    merged["library"] = Path(merged["library"]).expanduser().resolve()
    return replace(Settings(library=merged.pop("library")), **merged)
