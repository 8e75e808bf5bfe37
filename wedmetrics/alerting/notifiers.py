"""Notifiers: deliver a :class:`~wedmetrics.alerting.notification.NotificationGroup` over a real protocol.

Each notifier does one synchronous delivery attempt and either returns or
raises :class:`DeliveryError`, telling whether trying again may help
(``transient``) or not (``permanent``).  Queueing, retries and dead letters are
the job of :class:`wedmetrics.alerting.delivery.DeliveryQueue`; notifiers are
never called on the record path.

Channels
--------
* :class:`LogNotifier` - the ``logging`` module.
* :class:`EmailNotifier` - SMTP (stdlib ``smtplib``), optional STARTTLS and AUTH.
* :class:`SlackNotifier` - Slack incoming webhook (JSON POST).
* :class:`WebhookNotifier` - generic JSON POST signed with HMAC-SHA256
  (see :func:`sign_payload` / :func:`verify_signature` for the scheme).
* :class:`SmsNotifier` - Twilio-style form POST with HTTP basic auth, one
  request per phone number.

HTTP goes through ``urllib.request`` (no third-party client).  Redirects are
not followed: a webhook that answers 3xx is misconfigured, and following a
POST redirect would silently turn it into a GET.

Secrets (SMTP password, SMS auth token, the Slack webhook path, the HMAC
secret, custom header values) are held in :class:`Secret` and never appear in
``repr``, ``str``, log records or :class:`DeliveryError` messages.
"""
from __future__ import annotations

import abc
import base64
import datetime as _dt
import email.message
import email.utils
import hashlib
import hmac
import http.client
import json
import logging
import math
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from wedmetrics.clock import Clock, WallClock

from .notification import Notification, NotificationGroup, Severity, as_group

__all__ = [
    "DeliveryError",
    "Secret",
    "Notifier",
    "LogNotifier",
    "EmailNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "SmsNotifier",
    "sign_payload",
    "verify_signature",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DELIVERY_ID_HEADER",
    "RESPONSE_BODY_LIMIT",
]

SIGNATURE_HEADER = "X-Wedmetrics-Signature"
TIMESTAMP_HEADER = "X-Wedmetrics-Timestamp"
DELIVERY_ID_HEADER = "X-Wedmetrics-Delivery"
_USER_AGENT = "wedmetrics-notifier/0.1"
# An error body is quoted in DeliveryError to help debugging; keep it short so
# a chatty server cannot flood logs and dead letters.
_ERROR_BODY_CHARS = 200
#: Bytes of an HTTP response body a notifier reads at most; the rest is never
#: read (the connection is closed), so a huge answer costs no memory or time.
RESPONSE_BODY_LIMIT = 4096

Message = Notification | NotificationGroup


class DeliveryError(Exception):
    """A delivery attempt failed.

    Parameters
    ----------
    message : str
        What happened; never contains a secret.
    channel : str
        Name of the notifier that failed.
    permanent : bool
        True when retrying cannot help (HTTP 4xx, authentication refused,
        bad recipient): the delivery goes straight to the dead letters.
    status : int or None
        HTTP status or SMTP reply code, when there was one.
    retry_after : float or None
        Seconds the server asked us to wait (HTTP ``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        channel: str = "",
        permanent: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.channel = channel
        self.permanent = bool(permanent)
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True when a later attempt may succeed."""
        return not self.permanent


class Secret:
    """A string that does not show itself.

    ``repr``/``str`` give ``'***'``; :meth:`reveal` returns the value to the
    one place that must send it.

    >>> s = Secret("hunter2")
    >>> s, str(s), s.reveal()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, (str, bytes)) or not value:
            raise ValueError("a secret must be a non-empty str or bytes")
        self._value = value

    def reveal(self) -> str | bytes:
        """The secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(_as_bytes(self._value), _as_bytes(other._value))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self):  # pickling would write the secret in clear into whatever stores it
        raise TypeError("Secret cannot be pickled")


def _as_bytes(v: str | bytes) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else v


# --------------------------------------------------------------------------- base


class Notifier(abc.ABC):
    """One delivery channel.

    Subclasses implement :meth:`deliver`.  A channel with several independent
    recipients (SMS) lists them in :meth:`targets` so that the delivery queue
    retries each one on its own and never re-sends to a recipient that
    already got the message.

    Parameters
    ----------
    name : str, optional
        Channel name used in routing, counters and dead letters; defaults to
        the class's :attr:`kind`.  Two channels of one kind need two names.
    timeout : float
        Seconds one attempt may take.  HTTP channels enforce it as a deadline
        over the whole attempt (connect, TLS, request, status, headers,
        body), so a server trickling one byte a second cannot hold an
        attempt longer; email bounds each SMTP operation by it.
    """

    #: Short protocol name, the default channel name.
    kind: ClassVar[str] = "notifier"

    def __init__(self, *, name: str | None = None, timeout: float = 10.0) -> None:
        name = self.kind if name is None else name
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
            raise ValueError(f"{type(self).__name__}: name must be 1-64 of [A-Za-z0-9_.:-], got {name!r}")
        self.name = name
        self.timeout = _positive(timeout, f"{type(self).__name__}.timeout")

    def targets(self) -> tuple[str | None, ...]:
        """Independent recipients, each delivered (and retried) separately.

        ``(None,)`` means "one delivery reaches everybody".
        """
        return (None,)

    @abc.abstractmethod
    def deliver(self, group: NotificationGroup, target: str | None = None) -> None:
        """Make one delivery attempt of ``group`` to ``target``.

        Raises
        ------
        DeliveryError
            When the attempt failed.
        """

    def send(self, message: Message) -> None:
        """Deliver ``message`` to every target, once, synchronously.

        Raises
        ------
        DeliveryError
            On the first target that fails (later targets are not tried).
        """
        group = as_group(message)
        for target in self.targets():
            self.deliver(group, target)

    def _error(self, message: str, **kw: Any) -> DeliveryError:
        return DeliveryError(f"{self.name}: {message}", channel=self.name, **kw)


def _positive(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        raise ValueError(f"{what} must be a finite number of seconds > 0, got {x!r}")
    return float(x)


def _alert_lines(group: NotificationGroup) -> list[str]:
    """Plain-text rendering shared by email, Slack and the log."""
    lines: list[str] = []
    for section, alerts in (("Firing", group.firing), ("Resolved", group.resolved)):
        if not alerts:
            continue
        lines.append(f"{section} ({len(alerts)}):")
        for a in alerts:
            d = a.to_dict()
            lines.append(f"- {a.rule}: {a.summary or a.alert_id} [{a.severity.label}]")
            if a.description:
                lines.append(f"  {a.description}")
            if d["value"] is not None:
                lines.append(f"  value: {d['value']:g}")
            lines.append(f"  started: {d['startsAt']}" + (f", ended: {d['endsAt']}" if d["endsAt"] else ""))
            if a.labels:
                lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in a.labels.items()))
            for k, v in a.annotations.items():
                if k not in ("summary", "description"):
                    lines.append(f"  {k}: {v}")
            if a.wedding_id:
                lines.append(f"  wedding: {a.wedding_id}")
            if a.escalation_level:
                lines.append(f"  escalation level: {a.escalation_level}")
    return lines


# --------------------------------------------------------------------------- log

_LOG_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.CRITICAL: logging.ERROR,
    Severity.PAGE: logging.CRITICAL,
}


class LogNotifier(Notifier):
    """Write notifications to the ``logging`` module.

    Firing groups log at a level following their severity (info -> INFO,
    warning -> WARNING, critical -> ERROR, page -> CRITICAL); resolved groups
    at INFO.  The JSON-able payload rides along as
    ``record.wedmetrics_notification`` for structured handlers.

    Parameters
    ----------
    logger : logging.Logger or str, optional
        Defaults to ``"wedmetrics.alerts"``.
    """

    kind = "log"

    def __init__(self, logger: logging.Logger | str | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name, timeout=1.0)
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "wedmetrics.alerts")
        if not isinstance(logger, logging.Logger):
            raise TypeError(f"LogNotifier.logger must be a logging.Logger or a name, got {type(logger).__name__}")
        self.logger = logger

    def deliver(self, group: NotificationGroup, target: str | None = None) -> None:
        level = _LOG_LEVELS[group.severity] if group.status == "firing" else logging.INFO
        self.logger.log(
            level,
            "%s\n%s",
            group.title(),
            "\n".join(_alert_lines(group)),
            extra={"wedmetrics_notification": group.to_dict()},
        )

    def __repr__(self) -> str:
        return f"LogNotifier(logger={self.logger.name!r}, name={self.name!r})"


# --------------------------------------------------------------------------- email

_EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class EmailNotifier(Notifier):
    """Send notifications as plain-text email over SMTP.

    Parameters
    ----------
    host, port : str, int
        SMTP server.
    sender : str
        ``From`` address.
    to : str or iterable of str
        Recipients; one SMTP transaction reaches them all.
    username, password : str, optional
        SMTP AUTH credentials (both or neither).  Refused over a plain
        connection unless ``allow_insecure_auth=True``: sending a password in
        clear is a mistake worth an error.
    starttls : bool
        Upgrade the connection with STARTTLS before AUTH and DATA; a server
        that does not offer it fails the delivery permanently.
    implicit_tls : bool
        Speak TLS from the first byte (SMTPS, usually port 465) instead of
        STARTTLS.  Exclusive with ``starttls``.
    ssl_context : ssl.SSLContext, optional
        For STARTTLS or implicit TLS; defaults to
        ``ssl.create_default_context()`` (verifies certificate and host name).
    timeout : float
        Seconds per socket operation.
    local_hostname : str, optional
        Name sent in EHLO; defaults to the machine's FQDN.
    clock : Clock, optional
        Source of the ``Date`` header.
    """

    kind = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: str | Iterable[str],
        username: str | None = None,
        password: str | Secret | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
        *,
        implicit_tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure_auth: bool = False,
        local_hostname: str | None = None,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, timeout=timeout)
        if not isinstance(host, str) or not host:
            raise ValueError(f"EmailNotifier.host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"EmailNotifier.port must be an int in 1..65535, got {port!r}")
        if not isinstance(sender, str) or not _EMAIL_RE.match(sender):
            raise ValueError(f"EmailNotifier.sender must be an email address, got {sender!r}")
        recipients = (to,) if isinstance(to, str) else tuple(to)
        if not recipients:
            raise ValueError("EmailNotifier.to needs at least one recipient")
        for r in recipients:
            if not isinstance(r, str) or not _EMAIL_RE.match(r):
                raise ValueError(f"EmailNotifier.to: not an email address: {r!r}")
        if (username is None) != (password is None):
            raise ValueError("EmailNotifier: give both username and password, or neither")
        if starttls and implicit_tls:
            raise ValueError("EmailNotifier: choose starttls or implicit_tls, not both")
        if username is not None and not (starttls or implicit_tls) and not allow_insecure_auth:
            raise ValueError(
                "EmailNotifier: username/password without starttls or implicit_tls would send the password "
                "in clear; enable TLS (or allow_insecure_auth=True for a trusted local relay)"
            )
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"EmailNotifier.ssl_context must be an ssl.SSLContext, got {type(ssl_context).__name__}")
        self.host = host
        self.port = port
        self.sender = sender
        self.to = recipients
        self.username = username
        self._password = None if password is None else Secret(password)
        self.starttls = bool(starttls)
        self.implicit_tls = bool(implicit_tls)
        self._ssl_context = ssl_context
        self.local_hostname = local_hostname
        self._clock = clock or WallClock()

    def build_message(self, group: NotificationGroup) -> email.message.EmailMessage:
        """The email that :meth:`deliver` sends (useful to preview a template)."""
        msg = email.message.EmailMessage()
        msg["Subject"] = group.title()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = email.utils.formatdate(self._clock.now(), usegmt=True)
        # The sender's domain, not socket.getfqdn(): that may block on DNS.
        msg["Message-ID"] = email.utils.make_msgid("wedmetrics", domain=self.sender.rsplit("@", 1)[1])
        msg["X-Wedmetrics-Group-Key"] = group.group_key
        msg["X-Wedmetrics-Status"] = group.status
        msg["X-Wedmetrics-Severity"] = group.severity.label
        if group.status == "firing" and group.severity >= Severity.CRITICAL:
            msg["Importance"] = "high"
            msg["X-Priority"] = "1"
        msg.set_content("\n".join([group.title(), ""] + _alert_lines(group)) + "\n")
        return msg

    def deliver(self, group: NotificationGroup, target: str | None = None) -> None:
        msg = self.build_message(group)
        try:
            if self.implicit_tls:
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout,
                    context=self._ssl_context or ssl.create_default_context(),
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
            with conn as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if self._password is not None:
                    smtp.login(self.username, self._password.reveal())
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=list(self.to))
        except smtplib.SMTPAuthenticationError as e:
            raise self._error(f"SMTP authentication refused ({e.smtp_code})", permanent=True, status=e.smtp_code) from None
        except smtplib.SMTPNotSupportedError as e:
            raise self._error(f"SMTP server does not support a required extension: {e}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            raise self._error(
                f"SMTP server refused every recipient: {sorted(e.recipients)}",
                permanent=not all(400 <= c < 500 for c in codes),
                status=codes[0] if codes else None,
            ) from None
        except smtplib.SMTPResponseException as e:
            detail = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
            raise self._error(
                f"SMTP error {e.smtp_code}: {detail[:_ERROR_BODY_CHARS]}",
                permanent=e.smtp_code >= 500,
                status=e.smtp_code,
            ) from None
        except ssl.SSLCertVerificationError as e:
            raise self._error(f"TLS certificate of {self.host} not trusted: {e.verify_message}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as e:  # disconnects, refused connections, timeouts, TLS errors
            raise self._error(f"SMTP {self.host}:{self.port} failed: {_describe_os_error(e)}") from None
        if refused:
            # Some recipients got it: retrying would send them duplicates.
            raise self._error(f"SMTP server refused recipients {sorted(refused)}", permanent=True)

    def __repr__(self) -> str:
        auth = f", username={self.username!r}, password=***" if self.username is not None else ""
        return (
            f"EmailNotifier(host={self.host!r}, port={self.port}, sender={self.sender!r}, to={list(self.to)!r}"
            f"{auth}, starttls={self.starttls}, implicit_tls={self.implicit_tls}, name={self.name!r})"
        )


def _describe_os_error(e: BaseException) -> str:
    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"timed out ({type(e).__name__})"
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text[:_ERROR_BODY_CHARS]}"


# --------------------------------------------------------------------------- HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 - urllib hook
        return None  # urllib then raises HTTPError with the 3xx status


class _Deadline:
    """Cuts the connections of one HTTP attempt when its time is up.

    Socket timeouts bound each read, not the attempt: a server sending a
    byte just before every timeout would hold it for ever.  A timer shuts the
    attempt's sockets down at the deadline instead, which ends any blocked
    read at once (TLS included: the shutdown is on the connection, not on
    the Python object).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.name = "wedmetrics-http-deadline"
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()    # at once: cancel() wakes it; no thread outlives the attempt
        with self._lock:
            for s in self._sockets:
                s.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Cut ``sock`` at the deadline (a duplicate is kept: the TLS layer
        takes the original over)."""
        with self._lock:
            if self.expired:
                sock.close()
                raise TimeoutError(f"deadline of {self.seconds:g}s passed")
            self._sockets.append(sock.dup())

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def resolve(self, host: str, port: int) -> list:
        """``getaddrinfo`` within the deadline: a lookup cannot be interrupted, so
        it runs in a helper thread that the attempt stops waiting for."""
        box: dict = {}

        def run() -> None:
            try:
                box["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except OSError as e:
                box["error"] = e

        t = threading.Thread(target=run, name="wedmetrics-http-resolve", daemon=True)
        t.start()
        t.join(self.remaining())
        if t.is_alive():
            raise TimeoutError(f"name lookup of {host!r} outlasted the {self.seconds:g}s deadline")
        if "error" in box:
            raise box["error"]
        return box["infos"]

    def connect(self, address: tuple, timeout: Any = None,
                source_address: Any = None) -> socket.socket:
        """``socket.create_connection`` under the deadline: the lookup, and each
        address tried in turn, get only the time left of the attempt."""
        host, port = address
        error: OSError | None = None
        for family, kind, proto, _, addr in self.resolve(host, port):
            left = self.remaining()
            if left <= 0:
                break
            sock = socket.socket(family, kind, proto)
            try:
                self.watch(sock)
                limit = left if not isinstance(timeout, (int, float)) else min(left, timeout)
                sock.settimeout(limit)
                if source_address:
                    sock.bind(source_address)
                sock.connect(addr)
                return sock
            except OSError as e:
                error = e
                sock.close()
        if self.remaining() <= 0:
            raise TimeoutError(f"connecting to {host}:{port} outlasted the "
                               f"{self.seconds:g}s deadline")
        raise error if error is not None else OSError(f"no address for {host!r}")

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass   # already closed by the other side


def _deadline_connection(base: type, deadline: _Deadline) -> type:
    """``base`` (HTTP or HTTPS connection) whose sockets ``deadline`` watches."""

    class Connection(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # the name lookup and every address tried count against the deadline
            self._create_connection = deadline.connect

    return Connection


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._connection = _deadline_connection(http.client.HTTPConnection, deadline)

    def http_open(self, req):  # noqa: D401 - urllib hook
        return self.do_open(self._connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._connection = _deadline_connection(http.client.HTTPSConnection, deadline)

    def https_open(self, req):  # noqa: D401 - urllib hook
        return self.do_open(self._connection, req, context=self._context)


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    # per attempt, so that the handlers know its deadline; proxies from the
    # environment still apply (build_opener adds ProxyHandler)
    return urllib.request.build_opener(_NoRedirect, _DeadlineHTTPHandler(deadline),
                                       _DeadlineHTTPSHandler(deadline))


def _check_http_url(url: Any, what: str) -> urllib.parse.SplitResult:
    if not isinstance(url, str):
        raise TypeError(f"{what} must be an http(s) URL string, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself may hold a token: say what is wrong without echoing it.
        raise ValueError(f"{what} must be an http:// or https:// URL with a host (scheme given: {parts.scheme!r})")
    return parts


def _shown_url(parts: urllib.parse.SplitResult, *, keep_path: bool) -> str:
    """URL without credentials, query and (optionally) path, for messages."""
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path if keep_path else ("/***" if parts.path not in ("", "/") else "")
    query = "?***" if parts.query else ""
    return f"{parts.scheme}://{netloc}{path}{query}"


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:  # the other allowed form is an HTTP date
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        seconds = (parsed - _dt.datetime.now(tz=_dt.timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _HttpNotifier(Notifier):
    """POST helper with the error classification every HTTP channel shares.

    The full URL is kept only as a :class:`Secret` (``_url``): Slack's path
    and many webhooks' query strings are credentials.  ``_shown`` is the
    printable form.
    """

    _url: Secret
    _shown: str

    def _set_url(self, url: Any, what: str, *, keep_path: bool) -> None:
        parts = _check_http_url(url, what)
        self._url = Secret(url)
        self._shown = _shown_url(parts, keep_path=keep_path)

    def _post(self, body: bytes, headers: Mapping[str, str]) -> int:
        """POST within ``timeout`` (a deadline for the whole attempt), reading at
        most :data:`RESPONSE_BODY_LIMIT` bytes of the answer."""
        req = urllib.request.Request(str(self._url.reveal()), data=body, method="POST")
        req.add_header("User-Agent", _USER_AGENT)
        req.add_header("Connection", "close")
        for k, v in headers.items():
            req.add_header(k, v)
        with _Deadline(self.timeout) as deadline:
            return self._attempt(req, deadline)

    def _timed_out(self) -> DeliveryError:
        return self._error(f"POST {self._shown} failed: timed out (no complete answer within "
                           f"timeout={self.timeout:g}s)")

    def _attempt(self, req: urllib.request.Request, deadline: _Deadline) -> int:
        try:
            with _opener(deadline).open(req, timeout=self.timeout) as resp:
                resp.read(RESPONSE_BODY_LIMIT)   # the rest is dropped with the connection
                if deadline.expired:
                    raise TimeoutError("deadline passed while reading the answer")
                return resp.status
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                detail = e.read(_ERROR_BODY_CHARS).decode("utf-8", "replace").strip()
            except (OSError, http.client.HTTPException):
                detail = ""
            finally:
                e.close()
            # 408 and 429 are the client-side codes that invite a retry.
            permanent = status < 500 and status not in (408, 429)
            raise self._error(
                f"POST {self._shown} -> HTTP {status} {e.reason}" + (f": {detail}" if detail else ""),
                permanent=permanent,
                status=status,
                retry_after=_retry_after(e.headers),
            ) from None
        except urllib.error.URLError as e:
            if deadline.expired:   # whatever the cut connection raised
                raise self._timed_out() from None
            reason = e.reason if isinstance(e.reason, BaseException) else OSError(str(e.reason))
            if isinstance(reason, ssl.SSLCertVerificationError):  # configuration, not weather: do not retry
                raise self._error(
                    f"POST {self._shown}: TLS certificate not trusted: {reason.verify_message}", permanent=True
                ) from None
            raise self._error(f"POST {self._shown} failed: {_describe_os_error(reason)}") from None
        except (OSError, http.client.HTTPException) as e:  # timeouts while reading, resets, bad status lines
            if deadline.expired:
                raise self._timed_out() from None
            raise self._error(f"POST {self._shown} failed: {_describe_os_error(e)}") from None


# --------------------------------------------------------------------------- Slack

_SLACK_COLORS = {
    Severity.INFO: "#439FE0",
    Severity.WARNING: "#ECB22E",
    Severity.CRITICAL: "#E01E5A",
    Severity.PAGE: "#8B0000",
}
_RESOLVED_COLOR = "#2EB67D"


class SlackNotifier(_HttpNotifier):
    """Post notifications to a Slack incoming webhook.

    Parameters
    ----------
    webhook_url : str
        ``https://hooks.slack.com/services/T.../B.../...``; its path is the
        credential, so it is shown as ``https://hooks.slack.com/***``.
    timeout : float
        Seconds per socket operation.
    """

    kind = "slack"

    def __init__(self, webhook_url: str | Secret, *, timeout: float = 10.0, name: str | None = None) -> None:
        super().__init__(name=name, timeout=timeout)
        raw = webhook_url.reveal() if isinstance(webhook_url, Secret) else webhook_url
        self._set_url(raw, "SlackNotifier.webhook_url", keep_path=False)

    def build_payload(self, group: NotificationGroup) -> dict[str, Any]:
        """The JSON object posted to Slack."""
        color = _SLACK_COLORS[group.severity] if group.status == "firing" else _RESOLVED_COLOR
        fields = [{"title": "severity", "value": group.severity.label, "short": True}]
        if group.wedding_ids:
            fields.append({"title": "wedding", "value": ", ".join(group.wedding_ids), "short": True})
        return {
            # "text" is the notification preview and the fallback for clients without attachments.
            "text": group.title(),
            "attachments": [
                {
                    "color": color,
                    "title": group.title(),
                    "text": "\n".join(_alert_lines(group)),
                    "fields": fields,
                    "footer": f"wedmetrics · group {group.group_key}",
                }
            ],
        }

    def deliver(self, group: NotificationGroup, target: str | None = None) -> None:
        body = json.dumps(self.build_payload(group), allow_nan=False).encode("utf-8")
        self._post(body, {"Content-Type": "application/json"})

    def __repr__(self) -> str:
        return f"SlackNotifier(webhook_url={self._shown!r}, name={self.name!r})"


# --------------------------------------------------------------------------- signed webhook


def canonical_body(group: NotificationGroup) -> bytes:
    """The exact bytes :class:`WebhookNotifier` posts for ``group``.

    Compact, key-sorted JSON of :meth:`NotificationGroup.to_dict`, UTF-8.
    Retries of one notification send the same bytes, so its
    ``X-Wedmetrics-Delivery`` id (a digest of them) is stable.
    """
    return json.dumps(group.to_dict(), separators=(",", ":"), sort_keys=True, allow_nan=False).encode("utf-8")


def sign_payload(secret: str | bytes | Secret, body: bytes, timestamp: int) -> str:
    """Signature header value: ``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}." + body))``.

    The timestamp is part of the signed material, so a captured request
    cannot be replayed later with a fresh timestamp.

    >>> sign_payload("s3cret", b'{"a":1}', 1700000000)[:15]
    'sha256=1698a50b'
    """
    key = _as_bytes(secret.reveal() if isinstance(secret, Secret) else secret)
    if not key:
        raise ValueError("sign_payload: secret must not be empty")
    if not isinstance(body, (bytes, bytearray)):
        raise TypeError(f"sign_payload: body must be bytes, got {type(body).__name__}")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"sign_payload: timestamp must be int epoch seconds, got {timestamp!r}")
    mac = hmac.new(key, str(timestamp).encode("ascii") + b"." + bytes(body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | bytes | Secret,
    body: bytes,
    headers: Mapping[str, str] | Any,
    *,
    tolerance: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """Check a request made by :class:`WebhookNotifier` (for receivers).

    Parameters
    ----------
    secret : str or bytes
        The shared secret.
    body : bytes
        The raw request body, exactly as received (before any JSON parsing).
    headers : mapping
        Request headers; looked up case-insensitively (a dict,
        ``http.client.HTTPMessage`` or a framework's header object).
    tolerance : float or None
        Largest accepted ``|now - timestamp|`` in seconds; ``None`` skips the
        replay check.
    now : float, optional
        Current epoch seconds (defaults to the wall clock).

    Returns
    -------
    bool
        True only if the timestamp is fresh and the signature matches
        (constant-time comparison).
    """
    lowered = {str(k).lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    if not isinstance(signature, str) or not isinstance(stamp, str) or not stamp.isdigit():
        return False
    timestamp = int(stamp)
    if tolerance is not None:
        current = WallClock().now() if now is None else now
        if abs(current - timestamp) > tolerance:
            return False
    expected = sign_payload(secret, body, timestamp)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace"))


class WebhookNotifier(_HttpNotifier):
    """POST notifications as JSON to any HTTP endpoint, optionally HMAC-signed.

    The body is :func:`canonical_body` (Alertmanager-like: ``status``,
    ``groupKey``, ``commonLabels``, ``alerts`` ...).  Headers:

    ``Content-Type: application/json``
    ``X-Wedmetrics-Delivery``
        32 hex digits, the same on every retry of one notification: receivers
        de-duplicate with it.
    ``X-Wedmetrics-Timestamp`` (with a secret)
        Integer epoch seconds of this attempt.
    ``X-Wedmetrics-Signature`` (with a secret)
        ``sha256=<hex>``, see :func:`sign_payload`; check with
        :func:`verify_signature`.

    Parameters
    ----------
    url : str
        Endpoint; credentials and query string are hidden in reprs and errors.
    secret : str or bytes, optional
        HMAC key.
    headers : mapping, optional
        Extra headers (e.g. ``Authorization``); their values count as secrets.
    timeout : float
        Seconds per socket operation.
    clock : Clock, optional
        Source of the timestamp header.
    """

    kind = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | bytes | Secret | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, timeout=timeout)
        self._set_url(url, "WebhookNotifier.url", keep_path=True)
        self._secret = None if secret is None else Secret(secret)
        extra: dict[str, Secret] = {}
        for k, v in (headers or {}).items():
            if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z0-9-]+", k):
                raise ValueError(f"WebhookNotifier.headers: invalid header name {k!r}")
            if not isinstance(v, (str, Secret)) or "\n" in str(v.reveal() if isinstance(v, Secret) else v):
                raise ValueError(f"WebhookNotifier.headers[{k!r}] must be a single-line str")
            if k.lower() in (SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower(), DELIVERY_ID_HEADER.lower()):
                raise ValueError(f"WebhookNotifier.headers: {k!r} is set by the notifier itself")
            extra[k] = Secret(v)
        self._headers = extra
        self._clock = clock or WallClock()

    def build_request(self, group: NotificationGroup) -> tuple[bytes, dict[str, str]]:
        """Body and headers of one attempt (signed with the current time)."""
        body = canonical_body(group)
        headers = {k: str(v.reveal()) for k, v in self._headers.items()}
        headers["Content-Type"] = "application/json"
        headers[DELIVERY_ID_HEADER] = hashlib.sha256(body).hexdigest()[:32]
        if self._secret is not None:
            timestamp = int(self._clock.now())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign_payload(self._secret, body, timestamp)
        return body, headers

    def deliver(self, group: NotificationGroup, target: str | None = None) -> None:
        body, headers = self.build_request(group)
        self._post(body, headers)

    def __repr__(self) -> str:
        signed = ", secret=***" if self._secret is not None else ""
        hdrs = f", headers={sorted(self._headers)!r}" if self._headers else ""
        return f"WebhookNotifier(url={self._shown!r}{signed}{hdrs}, name={self.name!r})"


# --------------------------------------------------------------------------- SMS

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


class SmsNotifier(_HttpNotifier):
    """Send SMS through a Twilio-style HTTP gateway.

    One form-encoded POST (``To``, ``From``, ``Body``) per phone number,
    authenticated with HTTP basic auth ``account_sid:auth_token``.  Each
    number is a separate delivery target, retried on its own.

    Parameters
    ----------
    gateway_url : str
        Messages endpoint, e.g.
        ``https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json``;
        a literal ``{account_sid}`` is filled in.
    account_sid : str
        Basic-auth user (shown masked to its last 4 characters).
    auth_token : str
        Basic-auth password (never shown).
    from_number : str
        Sender in E.164 form (``+15551234567``).
    to_numbers : str or iterable of str
        Recipients in E.164 form.
    max_length : int
        Bodies are cut to this many characters (Twilio accepts 1600).
    timeout : float
        Seconds per socket operation.
    """

    kind = "sms"

    def __init__(
        self,
        gateway_url: str,
        account_sid: str,
        auth_token: str | Secret,
        from_number: str,
        to_numbers: str | Iterable[str],
        *,
        max_length: int = 1600,
        timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, timeout=timeout)
        if not isinstance(account_sid, str) or not account_sid or ":" in account_sid:
            raise ValueError("SmsNotifier.account_sid must be a non-empty str without ':'")
        if isinstance(gateway_url, str) and "{account_sid}" in gateway_url:
            gateway_url = gateway_url.replace("{account_sid}", urllib.parse.quote(account_sid, safe=""))
        self._set_url(gateway_url, "SmsNotifier.gateway_url", keep_path=True)
        self._shown = self._shown.replace(urllib.parse.quote(account_sid, safe=""), _mask(account_sid))
        self.account_sid = account_sid
        self._auth_token = Secret(auth_token)
        for field, num in [("from_number", from_number)] + [
            ("to_numbers", n) for n in ((to_numbers,) if isinstance(to_numbers, str) else tuple(to_numbers))
        ]:
            if not isinstance(num, str) or not _E164.match(num):
                raise ValueError(f"SmsNotifier.{field}: {num!r} is not an E.164 number like '+15551234567'")
        self.from_number = from_number
        self.to_numbers = (to_numbers,) if isinstance(to_numbers, str) else tuple(to_numbers)
        if not self.to_numbers:
            raise ValueError("SmsNotifier.to_numbers needs at least one number")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 20:
            raise ValueError(f"SmsNotifier.max_length must be an int >= 20, got {max_length!r}")
        self.max_length = max_length

    def targets(self) -> tuple[str, ...]:
        return self.to_numbers

    def build_text(self, group: NotificationGroup) -> str:
        """The SMS body: headline, then one line per alert, cut to ``max_length``."""
        lines = [group.title()]
        for a in group.alerts:
            where = f" @{a.wedding_id}" if a.wedding_id else ""
            lines.append(f"{a.status[0].upper()} {a.rule}{where}: {a.summary or a.alert_id}")
        text = "\n".join(lines)
        if len(text) > self.max_length:
            text = text[: self.max_length - 1] + "\u2026"
        return text

    def deliver(self, group: NotificationGroup, target: str | None = None) -> None:
        if target is None:
            raise ValueError("SmsNotifier.deliver needs a target phone number (see targets())")
        if target not in self.to_numbers:
            raise ValueError(f"SmsNotifier.deliver: {target!r} is not one of this notifier's to_numbers")
        body = urllib.parse.urlencode({"To": target, "From": self.from_number, "Body": self.build_text(group)})
        creds = f"{self.account_sid}:{self._auth_token.reveal()}".encode("utf-8")
        self._post(
            body.encode("ascii"),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Basic " + base64.b64encode(creds).decode("ascii"),
            },
        )

    def __repr__(self) -> str:
        return (
            f"SmsNotifier(gateway_url={self._shown!r}, account_sid={_mask(self.account_sid)!r}, auth_token=***, "
            f"from_number={self.from_number!r}, to_numbers={list(self.to_numbers)!r}, name={self.name!r})"
        )


def _mask(s: str) -> str:
    return "***" + s[-4:] if len(s) > 8 else "***"
