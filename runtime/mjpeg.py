"""A tiny MJPEG preview server (stdlib ``http.server`` in a thread): ``/`` is a page, ``/stream.mjpg`` the latest frame."""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from memgaze.errors import fail

BOUNDARY = "memgazeframe"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>memgaze</title>
<style>body{margin:0;background:#111;color:#eee;font-family:sans-serif}img{display:block;max-width:100%}</style>
</head><body>
<img id="stream" src="/stream.mjpg" alt="memgaze live preview"
 onload="document.title='memgaze '+this.naturalWidth+'x'+this.naturalHeight">
</body></html>
"""


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` → (host, port); host defaults to localhost."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        fail(f"--serve wants HOST:PORT or PORT, got {text!r}")
    if not 0 <= number < 65536:
        fail(f"--serve port {number} is out of range")
    return host.strip("[]") or default_host, number


class MjpegServer:
    """Serves the newest published JPEG to every client; old frames are never queued."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._cond = threading.Condition()
        self._closed = False
        try:
            self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as exc:
            fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="memgaze-mjpeg", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    def publish(self, jpeg: bytes) -> None:
        """Make ``jpeg`` the frame every client gets next."""
        with self._cond:
            self._jpeg = jpeg
            self._sequence += 1
            self._cond.notify_all()

    def _next_frame(self, seen: int) -> tuple[int, bytes | None]:
        """Block until a frame newer than ``seen`` (or shutdown); returns (sequence, jpeg or None when closed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._sequence > seen and self._jpeg is not None))
            return self._sequence, None if self._closed else self._jpeg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                """Quiet: no access log on the console."""

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode())
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

            def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache, no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                seen = 0
                try:
                    while True:
                        seen, jpeg = server._next_frame(seen)
                        if jpeg is None:
                            return
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler
