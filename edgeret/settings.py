"""Every default, environment variable and path of edgeret, in one place.

Resolution order for Settings: defaults < config.toml < environment < command line. Bad values in the file or the
environment raise ConfigError (a message and exit code 2), never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

import platformdirs

from .errors import ConfigError

APP = "edgeret"

# ---------------------------------------------------------------------------------------------- defaults
DEFAULT_ENCODER = "clip-vit-b32"  # a new library's encoder when none is named
BATCH_SIZE = 16  # images per inference batch
EXACT_BELOW = 50_000  # libraries smaller than this are searched exactly; larger ones through USearch HNSW
K = 20  # results per query, and how many of them are re-ranked
EVAL_K = 50  # first-stage results re-ranked per query by `edgeret eval`
LAMBDA = 0.5  # final = λ·first stage + (1−λ)·P(same)
RERANKER = "mllm"  # mllm, sv or mllm+sv
VERDICT_SAME = 0.8  # P(same) at or above: the app says "Same object" (measured in docs/evaluation.md)
VERDICT_DIFFERENT = 0.2  # P(same) below: "Different"; between the two: "Maybe"
DUPLICATE_THRESHOLD = 0.95  # re-encoded and resized copies of one photo sit above this with CLIP ViT-B/32
DUPLICATE_K = 10  # neighbours examined per photo
DUPLICATE_MARGIN = 0.03  # the borderline band around the threshold a verifier judges
WATCH_QUIET = 1.0  # seconds without changes before the watcher indexes
WATCH_MAX_DELAY = 10.0  # the watcher indexes at least this often during long copies
THUMBNAIL_SIZE = 256
PREPARE_ORDER = "neighbours"  # which photos get visual tokens first: most often in other photos' top-k
PREPARE_PRIORITY = "idle"  # background token preparation: idle (Linux SCHED_IDLE + nice 19), low (nice 19), normal
CLUSTER_COLLECTION = "edgeret"  # the Milvus collection `edgeret cluster` uses
CLUSTER_WORKERS = 2  # actors per pool of `edgeret cluster` (encoders, token encoders, re-rank scorers)
CLUSTER_THREADS = 1  # CPU threads per `edgeret cluster` actor: many one-thread actors beat few wide ones

# square: a SmolVLM photo is squashed to its one tile, so both image chunks are the same pixels and the vision tower
# runs once (0.52x the libmtmd loop's encode, docs/performance.md); as-is: libmtmd's own preprocessing (overview +
# letterboxed tile, two tower runs), for anyone who wants the model's input exactly as libmtmd makes it
VLM_TILES = "square"
VLM_TILES_CHOICES = ("square", "as-is")


def vlm_tiles() -> str:
    """How photos reach libmtmd: EDGERET_VLM_TILES, else VLM_TILES."""
    value = env(ENV_VLM_TILES) or VLM_TILES
    if value not in VLM_TILES_CHOICES:
        raise ConfigError(f"{ENV_VLM_TILES}={value!r}: choose one of {', '.join(VLM_TILES_CHOICES)}")
    return value


# ------------------------------------------------------------------------------------- environment variables
ENV_LIBRARY = "EDGERET_LIBRARY"  # the library folder
ENV_ENCODER = "EDGERET_ENCODER"  # the encoder of a new library
ENV_THREADS = "EDGERET_THREADS"  # CPU threads for inference
ENV_EXACT_BELOW = "EDGERET_EXACT_BELOW"
ENV_CONFIG = "EDGERET_CONFIG"  # the config.toml file
ENV_MODELS = "EDGERET_MODELS"  # where models are installed
ENV_THUMBNAILS = "EDGERET_THUMBNAILS"  # the thumbnail cache folder
ENV_REGISTRY = "EDGERET_REGISTRY"  # a registry.toml replacing the packaged one
ENV_HUB_URL = "EDGERET_HUB_URL"  # a model hub replacing https://huggingface.co
ENV_VLM_WEIGHTS = "EDGERET_VLM_WEIGHTS"  # which text weights llama.cpp runs: auto, as-is or f32
ENV_VLM_TILES = "EDGERET_VLM_TILES"  # how photos reach libmtmd: square (tower runs once) or as-is (see VLM_TILES)
ENV_PREPARE_PRIORITY = "EDGERET_PREPARE_PRIORITY"  # idle, low or normal (see PREPARE_PRIORITY)
ENV_MILVUS_TOKEN = "EDGERET_MILVUS_TOKEN"  # the token `edgeret cluster --milvus URI` authenticates with


def env(name: str) -> str | None:
    """An environment variable, None when unset or empty."""
    return os.environ.get(name) or None


def _env_path(name: str) -> Path | None:
    value = env(name)
    return Path(value).expanduser() if value else None


# ------------------------------------------------------------------------------------------------- paths
def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def models_dir() -> Path:
    """Where models are installed (EDGERET_MODELS overrides the user cache directory)."""
    return _env_path(ENV_MODELS) or Path(platformdirs.user_cache_dir(APP)) / "models"


def thumbnails_dir() -> Path:
    """Where thumbnails live unless a folder is given (EDGERET_THUMBNAILS overrides the user cache directory)."""
    return _env_path(ENV_THUMBNAILS) or Path(platformdirs.user_cache_dir(APP)) / "thumbnails"


def config_file() -> Path:
    return _env_path(ENV_CONFIG) or Path(platformdirs.user_config_dir(APP)) / "config.toml"


def registry_override() -> Path | None:
    """EDGERET_REGISTRY, when set: a registry file used instead of the packaged one."""
    return _env_path(ENV_REGISTRY)


def hub_url() -> str | None:
    """EDGERET_HUB_URL, when set."""
    return env(ENV_HUB_URL)


# ---------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    library: Path
    encoder: str | None = None  # None: the library's own encoder, else DEFAULT_ENCODER
    threads: int = max(1, (os.cpu_count() or 2))
    batch_size: int = BATCH_SIZE
    exact_below: int = EXACT_BELOW  # libraries smaller than this are searched exactly; larger ones through HNSW


# what each key accepts, and its smallest value for the numbers
_KINDS: dict[str, tuple[type, int | None]] = {
    "library": (str, None), "encoder": (str, None), "threads": (int, 1), "batch_size": (int, 1),
    "exact_below": (int, 0),
}


def _check(key: str, value: object, where: str) -> object:
    kind, low = _KINDS[key]
    if kind is int and isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: {key} must be a whole number, not {value!r}") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be a {'whole number' if kind is int else 'string'}, not {value!r}")
    if low is not None and isinstance(value, int) and value < low:
        raise ConfigError(f"{where}: {key} must be at least {low}, not {value}")
    return value


def _from_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    known = {f.name for f in fields(Settings)}
    return {k: _check(k, v, str(path)) for k, v in raw.items() if k in known}


def _from_env() -> dict:
    names = {"library": ENV_LIBRARY, "encoder": ENV_ENCODER, "threads": ENV_THREADS, "exact_below": ENV_EXACT_BELOW}
    return {key: _check(key, value, name) for key, name in names.items() if (value := env(name))}


def load_settings(base: dict | None = None, **overrides) -> Settings:
    """Resolve settings; `overrides` are command-line values, None meaning "not given".

    `base` replaces defaults for one kind of command (`edgeret cluster`'s threads per actor); the file and the
    environment still override it.
    """
    merged: dict = {"library": data_dir() / "library", **(base or {})}
    merged |= _from_file(config_file())
    merged |= _from_env()
    merged |= {k: v for k, v in overrides.items() if v is not None}
    merged["library"] = Path(merged["library"]).expanduser().resolve()
    return replace(Settings(library=merged.pop("library")), **merged)
