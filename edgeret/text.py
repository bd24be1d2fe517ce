"""Text -> image search: a CLIP text tower over onnxruntime with its own tokenizer.json, paired with the library's
image encoder.

A text-encoder folder holds model.onnx, tokenizer.json and text.json (written by edgeret.models from the registry's
[models.NAME.text] table): tokenizer, context_length (77), output ("embedding": the model pools at the end-of-text
token itself, as the Immich export does; "sequence": per-position outputs that we pool at the EOT position),
pairs_with (the image encoder(s) sharing its embedding space) and optionally pad_token, input_name, output_name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .encoders import l2_normalize, model_fingerprint, onnx_session
from .errors import EdgeretError, EncoderMismatch, ModelError, UsageError
from .library import Hit, Library
from .settings import K

if TYPE_CHECKING:
    from .models.registry import ModelInfo

log = logging.getLogger(__name__)

SETTINGS = "text.json"
EOT = "<|endoftext|>"


@dataclass(frozen=True)
class TextSettings:
    tokenizer: str = "tokenizer.json"
    context_length: int = 77
    output: str = "embedding"
    pairs_with: tuple[str, ...] = ()
    pad_token: str | None = None
    input_name: str | None = None
    output_name: str | None = None

    @classmethod
    def from_folder(cls, folder: Path) -> TextSettings:
        path = folder / SETTINGS
        raw: dict = {}
        if path.is_file():
            try:
                raw = json.loads(path.read_text("utf-8"))
            except ValueError as e:
                raise ModelError(f"cannot read {path}: {e}") from None
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        pairs = known.get("pairs_with", ())
        known["pairs_with"] = (pairs,) if isinstance(pairs, str) else tuple(pairs)
        s = cls(**known)
        if s.output not in ("embedding", "sequence") or s.context_length < 2:
            raise ModelError(f"{path}: output must be embedding or sequence, context_length at least 2")
        return s


class TextEncoder:
    """A CLIP text tower: `encode(texts)` returns L2-normalised float32 rows in the paired image space."""

    def __init__(self, folder: Path | str, threads: int = 2, name: str | None = None):
        self.folder = Path(folder)
        self.settings = TextSettings.from_folder(self.folder)
        model = self.folder / "model.onnx"
        tok_path = self.folder / self.settings.tokenizer
        if not model.is_file() or not tok_path.is_file():
            raise ModelError(f"{self.folder} is not a text-encoder folder (needs model.onnx and {tok_path.name})")
        self.name = name or self.folder.name
        self.tokenizer = _load_tokenizer(tok_path, self.settings)
        self.session = onnx_session(model, threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_name = self.settings.input_name or next(iter(inputs))
        self._id_dtype = np.int64 if inputs[self.input_name].type == "tensor(int64)" else np.int32
        self._mask_name = "attention_mask" if "attention_mask" in inputs else None  # HF exports take one
        self.output_name = self.settings.output_name or self.session.get_outputs()[0].name
        self.id = f"{self.name}:{model_fingerprint(self.folder, (tok_path, SETTINGS))}"
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode(["a photo"]).shape[1])
        return self._dim

    @property
    def pairs_with(self) -> tuple[str, ...]:
        return self.settings.pairs_with

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """(N, context_length) token ids: BOS … EOT, truncated (EOT kept) and padded to the context length."""
        # whitespace runs collapsed as CLIP's own text cleaning does; case and unicode are the tokenizer's job
        encodings = self.tokenizer.encode_batch([" ".join(t.split()) for t in texts])
        return np.array([e.ids for e in encodings], self._id_dtype)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), np.float32)
        ids = self.tokenize(texts)
        feed = {self.input_name: ids}
        if self._mask_name:
            feed[self._mask_name] = (np.arange(ids.shape[1]) <= _eot_positions(ids)[:, None]).astype(ids.dtype)
        y = np.asarray(self.session.run([self.output_name], feed)[0], np.float32)
        if self.settings.output == "sequence":
            y = y[np.arange(len(ids)), _eot_positions(ids)]
        return l2_normalize(y.reshape(len(ids), -1))


def _eot_positions(ids: np.ndarray) -> np.ndarray:
    """CLIP pools at the end-of-text token, which has the highest id; argmax returns its first occurrence."""
    return ids.argmax(axis=1)


def _load_tokenizer(path: Path, settings: TextSettings):
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for malformed files
        raise ModelError(f"cannot read tokenizer {path}: {e}") from None
    n = settings.context_length
    pad = settings.pad_token or (EOT if tok.token_to_id(EOT) is not None else None)
    pad_id = tok.token_to_id(pad) if pad else 0
    if pad and pad_id is None:
        raise ModelError(f"{path}: pad token {pad!r} is not in the vocabulary")
    # CLIP exports pad with EOT (or 0): the first EOT is still the argmax, so pooling is unaffected
    tok.enable_padding(length=n, pad_id=pad_id, pad_token=pad or "[PAD]")
    tok.enable_truncation(max_length=n)  # the post-processor's BOS/EOT are kept: tokenizers reserves room for them
    return tok


# pairing with a library ---------------------------------------------------------------------------------------
def library_encoder_name(library: Library) -> str | None:
    """The image encoder's name as recorded by the library (registry name or model folder name)."""
    stored = library.catalog.get_meta("encoder_id")
    return stored.split(":")[0] if stored else None


def library_dim(library: Library) -> int | None:
    index = library.refresh_index()
    if len(index) == 0:
        return None
    return int(index.matrix.shape[1]) if index.kind == "exact" else int(index.index.ndim)


def check_pairing(library: Library, encoder: TextEncoder) -> None:
    """Refuse a text tower whose space is not the library's: declared pairing first, then the dimension."""
    image_name = library_encoder_name(library)
    if encoder.pairs_with and image_name and image_name not in encoder.pairs_with:
        raise EncoderMismatch(
            f"the text encoder {encoder.name!r} pairs with {', '.join(encoder.pairs_with)}, but this library was "
            f"indexed with {image_name!r}: their vectors are not comparable"
        )
    dim = library_dim(library)
    if dim is not None and dim != encoder.dim:
        raise EncoderMismatch(
            f"the text encoder {encoder.name!r} gives {encoder.dim}-d vectors but the library holds {dim}-d vectors "
            f"from {image_name!r}: use the text tower trained with that image encoder"
        )
    if not encoder.pairs_with:
        log.warning("text encoder %s declares no pairs_with: only the dimension was checked", encoder.name)


def load_text_encoder(library: Library, spec: str | None = None, threads: int = 2) -> TextEncoder:
    """`spec` (a folder or registry name), else the registry's text tower that pairs with the library's encoder."""
    from .models import resolve

    if spec is None:
        image_name = library_encoder_name(library)
        matches = text_towers_for(image_name)
        if not matches:
            raise UsageError(
                f"no registered text encoder pairs with this library's image encoder {image_name!r}; "
                "pass --text-encoder FOLDER"
            )
        spec = matches[0].name
    folder = resolve(spec, "text-encoder")
    return TextEncoder(folder, threads=threads, name=Path(spec).name)


def text_search_status(library: Library, spec: str | None = None) -> tuple[bool, str, str | None]:
    """Can this library be searched by text? (ok, why not in plain words, registry model that would make it so).

    Never loads a model: it checks the pairing the registry declares and whether that model is installed."""
    from .models import resolve

    if spec:
        try:
            resolve(spec, "text-encoder")
            return True, "", None
        except EdgeretError as e:
            return False, f"the text encoder {Path(spec).name} cannot be used: {e}", None
    image_name = library_encoder_name(library)
    if image_name is None:
        return False, "text search works once photos are indexed", None
    pairs = text_towers_for(image_name)
    if not pairs:
        return False, f"this library's image encoder ({image_name}) has no text encoder to pair with", None
    installed = [m for m in pairs if m.installed()]
    if installed:
        return True, "", None
    return False, f"text search needs the text encoder {pairs[0].name} (not installed)", pairs[0].name


def text_towers_for(image_name: str | None, registry: dict[str, ModelInfo] | None = None) -> list[ModelInfo]:
    """The registry's text encoders declaring `image_name` in pairs_with, in registry order (`registry`: the
    packaged one when None)."""
    if registry is None:
        from .models import load_registry

        registry = load_registry()
    return [m for m in registry.values() if m.role == "text-encoder"
            and image_name in _as_tuple(m.config.get("text", {}).get("pairs_with"))]


def _as_tuple(value) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def search_text(library: Library, text_encoder: TextEncoder, text: str, k: int = K) -> list[Hit]:
    """Library photos ranked by cosine between `text` and each photo's vector, best first."""
    if not text or not text.strip():
        raise UsageError("the text query is empty")
    check_pairing(library, text_encoder)
    return library.search_vectors(text_encoder.encode([text]), k)[0]
