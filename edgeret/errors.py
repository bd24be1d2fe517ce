"""One small exception hierarchy; every message is meant for the user, and the CLI maps each class to an exit code."""


class EdgeretError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1


class UsageError(EdgeretError):
    exit_code = 2


class ConfigError(UsageError):
    """A bad value in config.toml or an EDGERET_* environment variable."""


class LibraryBusy(EdgeretError):
    exit_code = 3


class LibraryError(EdgeretError):
    exit_code = 4


class EncoderMismatch(LibraryError):
    exit_code = 5


class ModelError(EdgeretError):
    exit_code = 6


class EncoderFailed(ModelError):
    """The encoder could not encode a batch (onnxruntime refused it); the indexer retries photo by photo."""


class ModelMissing(ModelError):
    """A model is not installed; `model` names the registry entry when there is one to pull."""

    exit_code = 7

    def __init__(self, message: str, model: str | None = None):
        super().__init__(message)
        self.model = model


class NetworkError(ModelError):
    """A download failed because the connection failed, was cut or stalled (not an answer from the server).

    `kept` bytes of `file` stay on disk, so the next pull of `model` resumes; `offline` is True when no byte came at
    all (nothing answered: most likely no network)."""

    def __init__(self, message: str, model: str, file: str, url: str, kept: int = 0, offline: bool = False):
        super().__init__(message)
        self.model, self.file, self.url, self.kept, self.offline = model, file, url, kept, offline


class DecodeError(EdgeretError):
    """An image could not be read; recorded as a failure, never fatal to a run."""

    exit_code = 8


class Cancelled(EdgeretError):
    exit_code = 130
