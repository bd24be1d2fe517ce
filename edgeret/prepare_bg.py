"""Token preparation in a background process at the lowest CPU priority, for the app and `edgeret watch --vlm`.

`BackgroundPreparation` starts `python -m edgeret.prepare_bg` for a library and a re-ranker model. The child lowers
its own priority before it loads anything (SCHED_IDLE on Linux: it only gets CPU time no other thread wants, so a
query in the foreground keeps the cores), runs `prepare.prepare`, then waits to be woken for new photos. It reports
one JSON line per photo on stdout ({"ready", "total", "state", "eta_s", "path"}); it reads commands on stdin:
"pause", "resume", "wake" (new photos were indexed); end of input makes it stop after the photo in flight.
Being a process of its own, it needs no lock shared with the app's llama context, and a crash in it cannot take
the app down. Every photo is stored in its own transaction, so a restart carries on where the last run stopped.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .prepare import ORDERS, PrepareStatus
from .settings import PREPARE_ORDER

log = logging.getLogger(__name__)

SMALL_CONTEXT = 512  # the child never scores, so its llama context only has to exist
LOG_LINES = 20  # stderr lines kept from the child


class BackgroundPreparation:
    """One background preparation process for one library; thread-safe controls, status from callbacks.

    on_status(PrepareStatus) runs on a reader thread for every report; on_exit(returncode, message) once when the
    process ends (message: its last error line, or "").
    """

    def __init__(self, library: Path | str, *, model: str | None = None, vlm: str | None = None,
                 mmproj: str | None = None, threads: int = 2, order: str = PREPARE_ORDER,
                 on_status: Callable[[PrepareStatus], None] | None = None,
                 on_exit: Callable[[int, str], None] | None = None):
        self.library = Path(library)
        self.args = {"model": model, "vlm": vlm, "mmproj": mmproj, "threads": threads, "order": order}
        self.on_status, self.on_exit = on_status, on_exit
        self.status: PrepareStatus | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._error = ""
        self._log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._log_reader: threading.Thread | None = None

    # ---- controls ---------------------------------------------------------------------------------------------
    def start(self) -> BackgroundPreparation:
        cmd = [sys.executable, "-m", "edgeret.prepare_bg", "--library", str(self.library)]
        for name, value in self.args.items():
            if value is not None:
                cmd += [f"--{name}", str(value)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, bufsize=1, env=_child_env())
        self._log_reader = threading.Thread(target=self._read_errors, name="edgeret-prepare-log", daemon=True)
        self._log_reader.start()
        threading.Thread(target=self._read_status, name="edgeret-prepare-status", daemon=True).start()
        return self

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def wake(self) -> None:
        """New photos were indexed: prepare them too (once the current pass is through)."""
        self._send("wake")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Ask the process to stop after the photo in flight; killed if it has not within `timeout` seconds."""
        proc = self._proc
        if proc is None:
            return None
        with self._lock:
            if proc.stdin and not proc.stdin.closed:
                with contextlib.suppress(OSError):  # it ended already
                    proc.stdin.close()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _send(self, command: str) -> None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdin.closed:
                return
            with contextlib.suppress(OSError):  # it just ended: the exit callback tells why
                proc.stdin.write(command + "\n")
                proc.stdin.flush()

    # ---- the child's output -------------------------------------------------------------------------------------
    def _read_status(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "error" in d:
                self._error = d["error"]
                continue
            self.status = PrepareStatus(d["ready"], d["total"], d["state"], d.get("eta_s"), d.get("path"))
            if self.on_status is not None:
                self.on_status(self.status)
        code = proc.wait()
        if self._log_reader is not None:
            self._log_reader.join(timeout=2)  # its last lines say why, when the process died without a message
        if self.on_exit is not None:
            self.on_exit(code, self._error or (self._log[-1] if code and self._log else ""))

    @property
    def log_tail(self) -> list[str]:
        """The process's last lines on stderr (a crash's traceback ends there)."""
        return list(self._log)

    def _read_errors(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._log.append(line.rstrip())
            log.debug("prepare: %s", line.rstrip())


def _child_env() -> dict:
    env = dict(os.environ)
    # libgomp's idle threads then sleep instead of spinning: nothing of the child runs while it has no work
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


# --------------------------------------------------------------------------------------------------- the child
class _Commands:
    """The stdin protocol: pause / resume / wake; end of input means stop."""

    def __init__(self, stream):
        self.paused, self.woken, self.stopped = threading.Event(), threading.Event(), threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            cmd = line.strip()
            if cmd == "pause":
                self.paused.set()
            elif cmd == "resume":
                self.paused.clear()
            elif cmd == "wake":
                self.woken.set()
        self.stopped.set()
        self.woken.set()


def _emit(d: dict) -> None:
    print(json.dumps(d), flush=True)


def child_main(argv: list[str] | None = None) -> int:
    """The background process: prepare, report, wait to be woken, until stdin closes."""
    ap = argparse.ArgumentParser(prog="python -m edgeret.prepare_bg")
    ap.add_argument("--library", required=True)
    ap.add_argument("--model")
    ap.add_argument("--vlm")
    ap.add_argument("--mmproj")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--order", choices=ORDERS, default=PREPARE_ORDER)
    a = ap.parse_args(argv)

    from .errors import EdgeretError
    from .prepare import lower_priority

    try:
        lower_priority()  # before any thread exists: llama.cpp's workers inherit it
    except EdgeretError as e:
        _emit({"error": str(e)})
        return e.exit_code

    commands = _Commands(sys.stdin)
    try:
        return _serve(a, commands)
    except EdgeretError as e:
        _emit({"error": str(e)})
        return e.exit_code


def _serve(a: argparse.Namespace, commands: _Commands) -> int:
    from .library import Library
    from .prepare import prepare
    from .rerankers import open_mllm

    with Library(a.library) as lib:
        rr = open_mllm(lib, model=a.model, vlm=a.vlm, mmproj=a.mmproj, threads=a.threads, weights="as-is",
                       n_ctx=SMALL_CONTEXT)
        try:
            while not commands.stopped.is_set():
                commands.woken.clear()
                prepare(lib, rr, order=a.order, progress=lambda st: _emit(st.as_dict()),
                        cancel=commands.stopped.is_set, paused=commands.paused.is_set)
                commands.woken.wait()
        finally:
            rr.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(child_main())
