"""Helpers for the model tests: a real HTTP hub on 127.0.0.1 (with Range support and scripted faults), tiny real
GGUF files, and throw-away registries. No tests live here."""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np


def tiny_gguf(path: Path, arch: str = "llama", n_floats: int = 100_000, seed: int = 0) -> Path:
    """A valid GGUF file (written with gguf.GGUFWriter) holding one f32 tensor of n_floats values."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_uint32(f"{arch}.context_length", 64)
    w.add_tensor("token_embd.weight", np.random.default_rng(seed).standard_normal((n_floats // 8, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Route:
    """What the hub does for one path. `cut_after`: bytes sent before dropping the connection (per request, for
    the first `cut_times` requests); `status`: an error status to answer; `delay`: seconds to wait before the
    body; `ignore_range`: answer 200 with the whole file even to Range requests."""

    data: bytes
    status: int = 200
    cut_after: int | None = None
    cut_times: int = 1
    delay: float = 0.0
    ignore_range: bool = False
    requests: list[str | None] = field(default_factory=list)  # the Range header of each request


class Hub:
    """A threaded HTTP server on 127.0.0.1 serving Routes at /{repo}/resolve/{revision}/{path}."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                hub._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path: str, data: bytes, **kw) -> Route:
        self.routes[path] = route = Route(data, **kw)
        return route

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(h.path)
        if route is None:
            h.send_error(404)
            return
        rng = h.headers.get("Range")
        route.requests.append(rng)
        if route.status != 200:
            h.send_error(route.status)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not route.ignore_range:
            start = int(m.group(1))
            if start >= len(route.data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(route.data)}")
                h.end_headers()
                return
        body = route.data[start:]
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(route.data) - 1}/{len(route.data)}")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if route.delay:
            time.sleep(route.delay)
        if route.cut_after is not None and route.cut_times > 0:
            route.cut_times -= 1
            h.wfile.write(body[: route.cut_after])
            h.wfile.flush()
            h.close_connection = True
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            h.wfile.write(body)


def registry_toml(models: dict[str, dict]) -> str:
    """Render a registry file. models: name -> {role, files: [(name, size, sha256)], extra tables...}."""
    out = ["schema = 1", ""]
    for name, spec in models.items():
        out += [
            f'[models."{name}"]',
            f'role = "{spec["role"]}"',
            'repo = "test/repo"',
            'revision = "r1"',
            f'licence = "{spec.get("licence", "MIT")}"',
            f"default = {str(spec.get('default', False)).lower()}",
        ]
        out.append("files = [")
        for fname, size, digest in spec["files"]:
            out.append(f'  {{ name = "{fname}", path = "{name}/{fname}", size = {size}, sha256 = "{digest}" }},')
        out.append("]")
        for table in ("preprocess", "reranker", "text"):
            if table in spec:
                out.append(f'[models."{name}".{table}]')
                for k, v in spec[table].items():
                    out.append(f"{k} = {v!r}".replace("'", '"'))
        out.append("")
    return "\n".join(out)


def hub_path(model: str, fname: str) -> str:
    return f"/test/repo/resolve/r1/{model}/{fname}"
