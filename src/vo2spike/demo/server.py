"""The demo's HTTP server: standard library only (``http.server.ThreadingHTTPServer``).

Static files come from a fixed list (the files of ``static/``, read at start): no path from
a request is ever joined to a folder, so no path can escape it. JSON endpoints:

- ``GET /api/workouts``: the workouts offered;
- ``GET /api/trace?workout=ID[&age=&weight=&height=&sex=]``: a workout's signals, windows,
  predictions and summary;
- ``GET /api/window?workout=ID&index=I[&age=...]``: one window's model internals;
- ``GET /api/compression``: stage 6's weight grid;
- ``GET /api/model``: the run's facts and metrics;
- ``POST /api/upload``: a recording to predict (multipart/form-data, at most 10 MB).

Errors are JSON ``{"error": "..."}``: 400 for bad parameters or data (the CLI's messages),
503 when the model folder is missing or broken, 500 (a short message; the traceback goes to
the server's log only) for anything else.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from vo2spike.data.read import DataError
from vo2spike.demo.app import DemoApp, ModelUnavailable
from vo2spike.demo.upload import MAX_UPLOAD_BYTES
from vo2spike.demo.workouts import ParamError

log = logging.getLogger("vo2spike")
#: A too-large upload up to this size is read and dropped before the answer; a larger one
#: is answered at once and the connection closed.
DRAIN_LIMIT = 8 * MAX_UPLOAD_BYTES

STATIC = Path(__file__).resolve().parent / "static"
#: URL paths of the pages -> static file.
PAGES = {"/": "index.html", "/index.html": "index.html", "/how.html": "how.html",
         "/data.html": "data.html"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png"}
#: Everything is served from this origin; nothing may be loaded from anywhere else.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def static_files() -> dict[str, Path]:
    """URL path -> file, for every file of ``static/`` and the pages."""
    files = {f"/static/{p.name}": p for p in STATIC.iterdir()
             if p.is_file() and p.suffix in CONTENT_TYPES}
    files.update({url: STATIC / name for url, name in PAGES.items()})
    return files


def is_traversal(path: str) -> bool:
    """True for request paths that try to leave the served folder (any ``..`` segment,
    backslash or NUL, also after percent-decoding, once or twice)."""
    once = unquote(path)
    for p in (path, once, unquote(once)):
        if "\\" in p or "\0" in p or any(seg in ("..", ".") for seg in p.split("/")):
            return True
    return False


class DemoHandler(BaseHTTPRequestHandler):
    """Routes requests to the static files and to :class:`DemoApp`'s JSON."""

    server_version = "vo2spike-demo"
    timeout = 60  # s: a client that stops sending does not hold a thread for ever
    app: DemoApp
    files: dict[str, Path]

    # -- plumbing -------------------------------------------------------------------------
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str, **extra) -> None:
        if self.path.startswith("/api/"):
            self._json(status, {"error": message, **extra})
        else:
            from html import escape

            page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{status}"
                    f"</title><p>{escape(message)}</p><p><a href=\"/\">Back to the demo</a>"
                    "</p></html>")
            self._send(status, page.encode("utf-8"), CONTENT_TYPES[".html"])

    def _guarded(self, action) -> None:
        """Run ``action``; turn failures into short JSON errors, never a traceback."""
        try:
            action()
        except ParamError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e), kind="parameter")
        except DataError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e), kind="data")
        except ModelUnavailable as e:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"the model could not be loaded: {e}",
                        kind="model")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("demo: %s %s failed", self.command, self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                        "internal error: the server could not answer this request (the "
                        "details are in the server's log)", kind="internal")

    # -- methods --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_HEAD(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _get(self) -> None:
        url = urlsplit(self.path)
        if is_traversal(url.path):
            self._error(HTTPStatus.BAD_REQUEST, "refused: the path leaves the served folder")
            return
        if url.path.startswith("/api/"):
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            app = self.app
            routes = {
                "/api/workouts": lambda: app.workouts_json(),
                "/api/trace": lambda: app.trace_json(query.get("workout"), query),
                "/api/window": lambda: app.window_json(query.get("workout"), query),
                "/api/compression": lambda: app.compression_json(),
                "/api/model": lambda: app.model_json(),
            }
            if url.path not in routes:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}")
                return
            self._json(HTTPStatus.OK, routes[url.path]())
            return
        path = self.files.get(url.path)
        if path is None:
            self._error(HTTPStatus.NOT_FOUND, f"not found: {url.path}")
            return
        self._send(HTTPStatus.OK, path.read_bytes(), CONTENT_TYPES[path.suffix])

    def _post(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/api/upload":
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {url.path}")
            return
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            self._error(HTTPStatus.LENGTH_REQUIRED, "the upload needs a Content-Length")
            return
        if length > MAX_UPLOAD_BYTES:
            self.close_connection = True
            if length <= DRAIN_LIMIT:  # read and drop it, so that browsers see the answer
                for _ in range(0, length, 1 << 20):
                    self.rfile.read(min(1 << 20, length))
                    length -= 1 << 20
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"the upload is {length / 1e6:.1f} MB: the limit is "
                        f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB", kind="parameter")
            return
        body = self.rfile.read(length)
        self._json(HTTPStatus.OK, self.app.upload_json(self.headers.get("Content-Type", ""),
                                                        body))


class DemoServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer bound to one :class:`DemoApp`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: DemoApp) -> None:
        handler = type("BoundDemoHandler", (DemoHandler,), {"app": app,
                                                            "files": static_files()})
        super().__init__(address, handler)
        self.app = app

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def warm_up(self) -> threading.Thread:
        """Prepare the real recording in the background (its conversion takes seconds)."""
        def work() -> None:
            try:
                if self.app.model is not None:
                    self.app.specs()
            except Exception:  # shown again, clearly, when the page asks for it
                log.exception("demo: preparing the real recording failed")
        t = threading.Thread(target=work, daemon=True, name="demo-warm-up")
        t.start()
        return t


def make_server(model_dir: Path, host: str = "127.0.0.1", port: int = 8000,
                yoyo_root: Path | None = None) -> DemoServer:
    """A demo server for ``model_dir`` (not yet serving). A missing or broken model does not
    stop it: the pages say which folder and what is wrong."""
    return DemoServer((host, port), DemoApp(model_dir, yoyo_root=yoyo_root))


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 8000,
          yoyo_root: Path | None = None, say=print) -> None:
    """Serve the demo until interrupted (Ctrl-C)."""
    try:
        server = make_server(model_dir, host, port, yoyo_root)
    except OSError as e:  # e.g. the port is taken: say which
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    app = server.app
    if app.model_error:
        say(f"warning: the model could not be loaded: {app.model_error}\n"
            "         the page will say so; start with --model DIR (a folder written by "
            "`vo2spike train` or `vo2spike run`)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(f"warning: serving on {host}: other machines on the network can reach the demo")
    server.warm_up()
    say(f"vo2spike demo: {server.url}/  (model: {model_dir}; Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("demo stopped")
    finally:
        server.server_close()
        app.close()
