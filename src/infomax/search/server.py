"""A small local web page over an index: pick an indexed image, or drop one of your own, and
see its nearest indexed images with their paths and similarities.

The server (the standard library's ``http.server``, one thread per request) listens on
127.0.0.1 unless another host is asked for, and it reads no file by a name it was sent: images
are addressed by their row number in the index, so only indexed images can be fetched. When it
listens on a loopback address it also answers only requests addressed to ``localhost``,
``127.0.0.1`` or ``[::1]`` (a page elsewhere cannot reach it through DNS rebinding).

Routes (JSON unless noted):

- ``GET /``: the page. ``GET /api/info``: the index's size, tap, run, metrics.
- ``GET /api/sample?n=24&seed=0``: indexed images to pick from (``id``, ``path``).
- ``GET /api/search?id=N`` (or ``path=REL``) ``&k=9&metric=cosine``: the neighbours of an
  indexed image; ``POST /api/search?k=9&metric=cosine`` with an image file as the body: those of
  a new image (embedded with the run, like the indexed ones).
- ``GET /thumb/N?size=160``: a square PNG thumbnail of row N; ``GET /image/N``: the image itself
  (PNG, JPEG, GIF and WebP as stored; other formats converted to PNG).
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infomax.evaluation.knn import METRICS
from infomax.search.search import Searcher

__all__ = ["DEFAULT_PORT", "make_server"]

DEFAULT_PORT = 8765
MAX_UPLOAD = 32 << 20  # bytes
_AS_STORED = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".gif": "image/gif", ".webp": "image/webp"}  # fmt: skip
_LOCAL_NAMES = {"localhost", "127.0.0.1", "[::1]", "::1"}


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _App:
    """What the handlers share: the searcher (one search at a time) and the settings."""

    def __init__(self, searcher: Searcher, k: int, check_host: bool, log: Any):
        self.searcher = searcher
        self.k = k
        self.check_host = check_host
        self.log = log
        self.lock = threading.Lock()
        self.page = resources.files("infomax.search").joinpath("static/index.html").read_bytes()

    def info(self) -> dict[str, Any]:
        ix = self.searcher.index
        return {
            "count": len(ix), "dim": int(ix.vectors.shape[1]), "tap": ix.tap,
            "run": ix.meta.get("run"), "root": str(ix.root), "metrics": list(METRICS),
            "k": self.k, "updated": ix.meta.get("updated"),
        }  # fmt: skip

    def row(self, text: str) -> int:
        try:
            i = int(text)
        except ValueError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"not an image id: {text!r}") from None
        if not 0 <= i < len(self.searcher.index):
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"no indexed image {i}")
        return i

    def search(self, params: dict[str, str], body: bytes | None) -> dict[str, Any]:
        metric = params.get("metric", "cosine")
        if metric not in METRICS:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"metric must be one of {METRICS}")
        try:
            k = int(params.get("k", self.k))
        except ValueError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "k must be an integer") from None
        if not 1 <= k <= 1000:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "k must lie in [1, 1000]")
        ix = self.searcher.index
        with self.lock:
            if body is not None:
                try:
                    code = self.searcher.embed_image(body, "the uploaded file")
                except ValueError as exc:
                    raise _BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
                query: dict[str, Any] = {"id": None, "path": None}
                rows = [None]
            else:
                if "id" in params:
                    row = self.row(params["id"])
                elif "path" in params and ix.row(params["path"]) is not None:
                    row = ix.row(params["path"])
                else:
                    raise _BadRequest(HTTPStatus.NOT_FOUND, "give id=N or path=P of an indexed "
                                      "image, or POST an image")  # fmt: skip
                code = ix.vectors[row]
                query = {"id": row, "path": ix.paths[row]}
                rows = [row]
            skip = params.get("exclude_self", "0") in ("1", "true")
            scores, idx = self.searcher.neighbours(
                code[None], k, metric, exclude=rows if skip else None
            )
        key = "similarity" if metric == "cosine" else "distance"
        hits = [{"id": int(i), "path": ix.paths[int(i)], key: round(float(s), 6)}
                for s, i in zip(scores[0].tolist(), idx[0].tolist()) if i >= 0]  # fmt: skip
        return {"query": query, "metric": metric, "k": k, "neighbors": hits}

    def sample(self, params: dict[str, str]) -> list[dict[str, Any]]:
        import torch

        n = max(1, min(200, int(params.get("n", 24))))
        gen = torch.Generator().manual_seed(int(params.get("seed", 0)))
        rows = torch.randperm(len(self.searcher.index), generator=gen)[:n].tolist()
        return [{"id": r, "path": self.searcher.index.paths[r]} for r in rows]

    def image(self, row: int, thumb: int | None) -> tuple[bytes, str]:
        from infomax.search.grid import thumbnail

        path = self.searcher.index.file(row)
        if thumb is None and path.suffix.lower() in _AS_STORED:
            try:
                return path.read_bytes(), _AS_STORED[path.suffix.lower()]
            except OSError:
                raise _BadRequest(HTTPStatus.NOT_FOUND, "the file is gone") from None
        from PIL import Image

        if thumb is not None:
            im = Image.fromarray(thumbnail(path, thumb))
        else:
            try:
                with Image.open(path) as src:
                    im = src.convert("RGB")
            except Exception:
                raise _BadRequest(HTTPStatus.NOT_FOUND, "the file cannot be read") from None
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue(), "image/png"


def _handler(app: _App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "infomax-serve"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if app.log is not None:
                app.log(f"{self.address_string()} {format % args}")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj: Any, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

        def _host_ok(self) -> bool:
            if not app.check_host:
                return True
            host = (self.headers.get("Host") or "").strip().lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            return name in _LOCAL_NAMES

        def _route(self, method: str) -> None:
            if not self._host_ok():
                raise _BadRequest(HTTPStatus.FORBIDDEN, "requests must be addressed to localhost")
            url = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            if method == "POST":
                if parts != ["api", "search"]:
                    raise _BadRequest(HTTPStatus.NOT_FOUND, "not found")
                self._json(app.search(params, self._body()))
            elif parts in ([], ["index.html"]):
                self._send(200, app.page, "text/html; charset=utf-8")
            elif parts == ["api", "info"]:
                self._json(app.info())
            elif parts == ["api", "sample"]:
                self._json(app.sample(params))
            elif parts == ["api", "search"]:
                self._json(app.search(params, None))
            elif len(parts) == 2 and parts[0] in ("thumb", "image"):
                size = None
                if parts[0] == "thumb":
                    size = max(16, min(512, int(params.get("size", 160))))
                body, ctype = app.image(app.row(parts[1]), size)
                self._send(200, body, ctype)
            else:
                raise _BadRequest(HTTPStatus.NOT_FOUND, "not found")

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "send an image file as the body")
            if n > MAX_UPLOAD:
                raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                  f"images up to {MAX_UPLOAD >> 20} MB")  # fmt: skip
            return self.rfile.read(n)

        def _handle(self, method: str) -> None:
            try:
                self._route(method)
            except _BadRequest as exc:
                self.close_connection = True
                self._json({"error": str(exc)}, int(exc.status))
            except Exception as exc:  # a bug or a vanished file: answer, keep serving
                self._json({"error": f"{type(exc).__name__}: {exc}"}, 500)

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(
    searcher: Searcher | Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    k: int = 9,
    log: Any = None,
) -> ThreadingHTTPServer:
    """An HTTP server over ``searcher`` (a :class:`Searcher`, an index or its path), bound to
    ``host:port`` (port 0: a free one; ``server.server_address`` tells which). Call
    ``serve_forever()`` on it (and ``shutdown()`` from another thread to stop)."""
    if not isinstance(searcher, Searcher):
        searcher = Searcher(searcher)
    app = _App(searcher, k, check_host=_is_loopback(host), log=log)
    cls = _Server6 if ":" in host else _Server
    return cls((host, port), _handler(app))
