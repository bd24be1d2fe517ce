"""The GUI area's fixtures (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def window(qtbot, tmp_path, tiny_encoder):
    """A shown window on a new library with the tiny encoder; closed cleanly afterwards. Modules that need another
    window (an indexed library, a text encoder, …) define their own `window`."""
    from tests.gui.helpers import close, open_window  # Qt is imported only by modules that run (importorskip)

    w = open_window(qtbot, tmp_path, tiny_encoder)
    yield w
    close(w)
