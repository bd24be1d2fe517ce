"""Model registry, verified downloads with resume, offline import, verification and name resolution.

Layout under models_dir():
    NAME/                 an installed model: its files, generated JSON (preprocess.json / reranker.json / text.json)
                          and MANIFEST (written last); only ever created by one directory rename
    .partial/NAME/        resumable downloads (FILE.part); survive interruptions, removed after install
    .staging/             directories being assembled; never visible as installed
    .locks/NAME.lock      one pull/import of a model at a time
No function here prints; progress goes through callbacks.
"""

from edgeret.settings import models_dir  # noqa: F401

from .download import partial_bytes, pull  # noqa: F401
from .install import Progress, import_model, remove, verify  # noqa: F401
from .registry import (  # noqa: F401
    MANIFEST,
    default_model,
    get,
    list_models,
    load_registry,
    reranker_files,
    resolve,
)
