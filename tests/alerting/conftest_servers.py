"""Real local servers for the notifier tests, on 127.0.0.1 with ephemeral ports.

* :class:`ScriptedHTTPServer` - a ``ThreadingHTTPServer`` that records every
  request and answers from a per-path script (status, delay), so a test can
  make a server fail, recover or stall.
* :class:`StreamingHTTPServer` - a raw socket server answering with one
  byte at a time or with a huge body, counting the bytes that got out.
* :class:`SMTPServer` - an aiosmtpd server that records the messages it
  receives, optionally with STARTTLS (self-signed certificate made with the
  ``openssl`` command) and AUTH.

Imported by ``test_notifiers.py`` and ``test_delivery.py`` (this is not a
``conftest.py``: fixtures are imported by name).
"""
from __future__ import annotations

import collections
import dataclasses
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "alerts"
SMTP_PASSWORD = "correct-horse-battery-staple"


# --------------------------------------------------------------------------- HTTP


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body, and seconds to stall before answering."""

    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received: float  # time.monotonic()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = owner._record_and_pick(RecordedRequest("POST", path, query, headers, body, time.monotonic()))
        if reply.delay:
            # Interruptible stall: teardown sets `release` so no handler outlives the test.
            owner.release.wait(reply.delay)
        self.send_response(reply.status)
        for k, v in reply.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class _Server(http.server.ThreadingHTTPServer):
    # Non-daemon handler threads are joined by server_close(): no leaks.
    daemon_threads = False
    owner: "ScriptedHTTPServer"

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and hung up is expected in stall tests


class ScriptedHTTPServer:
    """Records POSTs; answers each path from its script, then with 200 ``ok``."""

    def __init__(self, tls: "TLSFiles | None" = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.scheme = "http"
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls.cert, tls.key)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.release = threading.Event()
        self._cond = threading.Condition()
        self._scripts: dict[str, collections.deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self.requests: list[RecordedRequest] = []
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply | int, then: Reply | int | None = None) -> None:
        """Answer the next requests to ``path`` with ``replies``, then with ``then`` (default 200)."""
        as_reply = lambda r: Reply(r) if isinstance(r, int) else r  # noqa: E731
        with self._cond:
            self._scripts[path] = collections.deque(as_reply(r) for r in replies)
            if then is not None:
                self._defaults[path] = as_reply(then)

    def _record_and_pick(self, req: RecordedRequest) -> Reply:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()
            script = self._scripts.get(req.path)
            if script:
                return script.popleft()
            return self._defaults.get(req.path, Reply())

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``n`` requests reached ``path`` (fails the test on timeout)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len([r for r in self.requests if r.path == path]) >= n, timeout)
        assert ok, f"expected {n} requests to {path}, got {len(self.requests_to(path))}"
        return self.requests_to(path)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def http_server() -> Iterator[ScriptedHTTPServer]:
    server = ScriptedHTTPServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def https_server(tls_files: "TLSFiles") -> Iterator[ScriptedHTTPServer]:
    server = ScriptedHTTPServer(tls_files)
    try:
        yield server
    finally:
        server.close()


class StreamingHTTPServer:
    """Answers one POST at a time with a slow or a huge response, counting what it sent.

    ``trickle(interval)``: a valid 200 answer (status line, headers and a
    300-byte body), one byte every ``interval`` seconds.  ``huge(size)``: a
    200 answer announcing and streaming ``size`` body bytes as fast as the
    client takes them.  Either way the server stops when the client hangs up
    (or at the end), and :attr:`sent` says how many bytes got out.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.mode: tuple = ("trickle", 0.05)
        self.sent = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def trickle(self, interval: float) -> None:
        self.mode = ("trickle", interval)

    def huge(self, size: int) -> None:
        self.mode = ("huge", size)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                self.sent = 0
                self.done.clear()
                try:
                    self._answer(conn)
                except OSError:
                    pass   # the client hung up: what it cost is in `sent`
                self.done.set()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)

    def _answer(self, conn: socket.socket) -> None:
        self._read_request(conn)
        kind, arg = self.mode
        if kind == "trickle":
            body = b"x" * 300
            answer = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            for i in range(len(answer)):
                if self._stop.wait(arg):
                    return
                conn.sendall(answer[i:i + 1])
                self.sent += 1
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % arg)
            chunk = b"y" * 65536
            while self.sent < arg and not self._stop.is_set():
                self.sent += conn.send(chunk[: arg - self.sent])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        assert not self._thread.is_alive()


@pytest.fixture
def streaming_server() -> Iterator[StreamingHTTPServer]:
    server = StreamingHTTPServer()
    try:
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- SMTP


@dataclasses.dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls: bool
    login: str | None


class _RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.cond = threading.Condition()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        mail = ReceivedMail(
            envelope.mail_from,
            tuple(envelope.rcpt_tos),
            envelope.original_content or envelope.content,
            session.ssl is not None,
            login,
        )
        with self.cond:
            self.messages.append(mail)
            self.cond.notify_all()
        return "250 Message accepted for delivery"


def _authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _EphemeralPortController(Controller):
    """aiosmtpd Controller on port 0: learn the real port before the readiness probe."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SMTPServer:
    """aiosmtpd server: plain, STARTTLS-required (``tls``) or implicit TLS (``tls`` + ``implicit``).

    With TLS it also requires AUTH as ``SMTP_USER`` / ``SMTP_PASSWORD``.
    """

    def __init__(self, tls: "TLSFiles | None" = None, *, implicit: bool = False) -> None:
        self.handler = _RecordingHandler()
        kwargs: dict = {}
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls.cert, tls.key)
            if implicit:
                # aiosmtpd only counts STARTTLS as "TLS" for AUTH; here the whole connection is TLS.
                kwargs = dict(ssl_context=ctx, authenticator=_authenticate, auth_require_tls=False)
            else:
                kwargs = dict(tls_context=ctx, require_starttls=True, authenticator=_authenticate,
                              auth_require_tls=True)
        self._controller = _EphemeralPortController(self.handler, hostname="127.0.0.1", port=0, **kwargs)
        self._controller.start()
        self.host = "127.0.0.1"
        self.port = self._controller.port

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.handler.cond:
            return list(self.handler.messages)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        with self.handler.cond:
            ok = self.handler.cond.wait_for(lambda: len(self.handler.messages) >= n, timeout)
        assert ok, f"expected {n} emails, got {len(self.messages)}"
        return self.messages

    def close(self) -> None:
        self._controller.stop()


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make the test certificate"
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return TLSFiles(cert, key)


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_tls_server(tls_files: TLSFiles) -> Iterator[SMTPServer]:
    server = SMTPServer(tls_files)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtps_server(tls_files: TLSFiles) -> Iterator[SMTPServer]:
    server = SMTPServer(tls_files, implicit=True)
    try:
        yield server
    finally:
        server.close()


def wedmetrics_threads() -> list[threading.Thread]:
    """Live threads started by wedmetrics (their names start with ``wedmetrics-``)."""
    return [t for t in threading.enumerate() if t.name.startswith("wedmetrics-") and t.is_alive()]
