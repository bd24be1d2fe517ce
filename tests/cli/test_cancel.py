"""Ctrl-C: one context manager maps it to a clean cancel and always gives the previous handler back."""

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from edgeret.cli import main
from edgeret.cli.common import cancellation


def test_cancellation_restores_the_handlers_even_when_the_work_fails():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError), cancellation(signal.SIGTERM) as stop:
        assert signal.getsignal(signal.SIGINT) is not before[0]
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the work runs: a flag, not an exception
        assert stop.is_set()
        raise RuntimeError("the model is missing")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_missing_model_leaves_ctrl_c_working(tmp_path, photos, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    assert main(["index", str(photos), "--library", str(lib), "--encoder", str(tiny_encoder), "--json"]) == 0
    before = signal.getsignal(signal.SIGINT)
    assert main(["encode-tokens", "--library", str(lib)]) == 7  # ModelMissing: the default re-ranker is absent
    assert "not installed" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.timeout(60)
def test_ctrl_c_at_the_download_prompt_ends_the_command(tmp_path, photos, tiny_encoder):
    """The first-run offer after a missing model: Ctrl-C there must stop edgeret, not be swallowed."""
    lib = tmp_path / "lib"
    assert main(["index", str(photos), "--library", str(lib), "--encoder", str(tiny_encoder), "--json"]) == 0
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "edgeret.cli", "encode-tokens", "--library", str(lib)],
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        err = b""
        deadline = time.monotonic() + 45
        while b"now? [Y/n]" not in err and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 1)[0]:
                err += os.read(proc.stderr.fileno(), 4096)
        assert b"now? [Y/n]" in err, err.decode()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
    finally:
        os.close(master)
        os.close(slave)
        if proc.poll() is None:
            proc.kill()
