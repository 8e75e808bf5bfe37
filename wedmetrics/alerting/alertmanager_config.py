"""Load an ``alertmanager.yml`` as it is: routing, receivers, inhibition, time intervals.

:func:`load_alertmanager_config` reads the whole file Alertmanager reads and
gives an :class:`AlertmanagerConfig`: a :class:`~wedmetrics.alerting.routing.RoutingConfig`
in exact-Alertmanager mode (``alertmanager=True``) and one
:class:`Receiver` notifier per receiver.  What Alertmanager refuses is
refused here with Alertmanager's message (duplicate or invalid
``group_by`` labels, mute intervals on the root route, undefined receivers
or time intervals, duplicate names); an integration wedmetrics does not
speak is an error naming it, never a silent drop.

>>> cfg = load_alertmanager_config('''
... route:
...   receiver: ops
...   group_by: [alertname]
...   routes:
...     - matchers: ['{severity="critical", team=~"web|db"}']
...       receiver: pager
... receivers:
...   - name: ops
...   - name: pager
...     webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
... ''')
>>> [str(m) for m in cfg.routing.route.routes[0].matchers]
['severity="critical"', 'team=~"web|db"']
>>> sorted(cfg.receivers)
['ops', 'pager']
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Optional

import yaml

from wedmetrics.clock import parse_duration

from .matchers import Matcher, compile_re2, parse_matcher_list
from .notification import FIRING, NotificationGroup
from .notifiers import EmailNotifier, LogNotifier, Notifier, SlackNotifier, SmsNotifier, _HttpNotifier
from .routing import RoutingConfig

__all__ = ["load_alertmanager_config", "AlertmanagerConfig", "Receiver", "AlertmanagerWebhookNotifier",
           "ConfigError", "channel_id", "SUPPORTED_INTEGRATIONS", "ALERTMANAGER_INTEGRATIONS", "label_fingerprint"]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: Integrations a receiver may use here.
SUPPORTED_INTEGRATIONS = ("email_configs", "slack_configs", "webhook_configs", "sms_configs", "log_configs")
#: Alertmanager integrations wedmetrics does not implement (an error names them).
ALERTMANAGER_INTEGRATIONS = (
    "discord_configs", "incidentio_configs", "jira_configs", "mattermost_configs", "msteams_configs",
    "msteamsv2_configs", "opsgenie_configs", "pagerduty_configs", "pushover_configs",
    "rocketchat_configs", "sns_configs", "telegram_configs", "victorops_configs", "webex_configs",
    "wechat_configs")

_TOP = {"global", "route", "receivers", "inhibit_rules", "time_intervals", "mute_time_intervals",
        "templates", "tracing"}
_GLOBAL_DEFAULTS = {"resolve_timeout": "5m", "smtp_require_tls": True, "smtp_hello": "localhost"}
_GLOBAL_KNOWN = {
    "resolve_timeout", "http_config", "smtp_from", "smtp_hello", "smtp_smarthost", "smtp_auth_username",
    "smtp_auth_password", "smtp_auth_password_file", "smtp_auth_secret", "smtp_auth_secret_file",
    "smtp_auth_identity", "smtp_require_tls", "smtp_tls_config", "slack_api_url", "slack_api_url_file",
    "slack_app_token", "slack_app_token_file", "slack_app_url", "pagerduty_url", "opsgenie_api_url",
    "opsgenie_api_key", "opsgenie_api_key_file", "wechat_api_url", "wechat_api_secret",
    "wechat_api_corp_id", "victorops_api_url", "victorops_api_key", "victorops_api_key_file",
    "telegram_api_url", "webex_api_url", "rocketchat_api_url", "rocketchat_token", "rocketchat_token_id",
    "jira_api_url", "mattermost_webhook_url",
}
_ROUTE_KEYS = {"receiver", "group_by", "continue", "match", "match_re", "matchers", "group_wait",
               "group_interval", "repeat_interval", "mute_time_intervals", "active_time_intervals", "routes"}
_INHIBIT_KEYS = {"source_match", "source_match_re", "source_matchers", "target_match", "target_match_re",
                 "target_matchers", "equal"}


class ConfigError(ValueError):
    """An ``alertmanager.yml`` that Alertmanager (or wedmetrics) would not load."""


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint: FNV-1a 64 over sorted ``name 0xff value 0xff``, 16 hex digits."""
    h = 0xcbf29ce484222325
    for name in sorted(labels):
        for part in (name.encode(), b"\xff", str(labels[name]).encode(), b"\xff"):
            for byte in part:
                h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# -- receivers ---------------------------------------------------------------------

class AlertmanagerWebhookNotifier(_HttpNotifier):
    """POSTs Alertmanager's webhook payload (``version: "4"``) to a URL.

    What a ``webhook_configs`` entry of an ``alertmanager.yml`` sends, so the
    receivers people already run keep working.  ``max_alerts`` (0: all)
    truncates, counted in ``truncatedAlerts``.
    """

    kind = "webhook"

    def __init__(self, url: str, *, receiver: str, max_alerts: int = 0, timeout: float = 10.0,
                 name: Optional[str] = None, external_url: str = "") -> None:
        super().__init__(name=name, timeout=timeout)
        self._set_url(url, "url", keep_path=True)
        if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 0:
            raise ValueError(f"max_alerts must be an int >= 0, got {max_alerts!r}")
        self.receiver = receiver
        self.max_alerts = max_alerts
        self.external_url = external_url

    def build_payload(self, group: NotificationGroup) -> dict:
        """Alertmanager's webhook ``Message``: its ``template.Data`` fields, then
        ``version``, ``groupKey`` and ``truncatedAlerts``, in that order."""
        alerts = list(group.alerts)
        shown = alerts[:self.max_alerts] if self.max_alerts else alerts
        return {
            "receiver": _go_quote_meta(self.receiver), "status": group.status,
            "alerts": [{
                "status": a.status, "labels": dict(a.labels), "annotations": dict(a.annotations),
                "startsAt": _rfc3339(a.starts_at),
                "endsAt": _rfc3339(a.ends_at) if a.ends_at is not None else "0001-01-01T00:00:00Z",
                "generatorURL": a.generator_url,
                "fingerprint": label_fingerprint(a.labels),
            } for a in shown],
            "groupLabels": dict(group.group_labels),
            "commonLabels": group.common_labels, "commonAnnotations": group.common_annotations,
            "externalURL": self.external_url,
            "version": "4", "groupKey": group.group_key, "truncatedAlerts": len(alerts) - len(shown),
        }

    def deliver(self, group: NotificationGroup, target: Optional[str] = None) -> None:
        body = json.dumps(self.build_payload(group), separators=(",", ":")).encode()
        self._post(body, {"Content-Type": "application/json"})

    def __repr__(self) -> str:
        return f"AlertmanagerWebhookNotifier(name={self.name!r}, receiver={self.receiver!r})"


def _go_quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: what Alertmanager's ``template.Data`` does to the receiver name."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _rfc3339(ts: float) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339 with nanoseconds, trailing zeros dropped), in UTC."""
    import datetime as _dt

    micros = round(ts * 1_000_000)
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=micros)
    fraction = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


class Receiver(Notifier):
    """One ``receivers:`` entry: its integrations, each delivered and retried on its own.

    ``receiver_name`` is the name in the ``alertmanager.yml`` (what routes,
    the API and webhook payloads show); :attr:`name` is its channel id in the
    delivery queue (the same when it is a valid channel name, else a
    sanitised form with a hash of the name, unique per configuration).

    An integration with ``send_resolved: false`` gets the firing alerts of a
    message only, and nothing when none fires (Alertmanager's defaults:
    true for webhooks, false for email and Slack).  A message whose
    ``targets`` are set (the dispatcher deduplicates per integration) goes to
    those integrations only; the others count it in :attr:`deduplicated`.
    A receiver without integrations accepts and drops, as Alertmanager's
    "null" receiver does (counted in :attr:`dropped`).
    """

    kind = "receiver"

    def __init__(self, name: str, integrations: list[tuple[str, Notifier, bool]],
                 receiver_name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.integrations = integrations   # (target name, notifier, send_resolved)
        self.receiver_name = receiver_name if receiver_name is not None else name
        self.dropped = 0
        self.deduplicated = 0

    def targets(self) -> tuple[Optional[str], ...]:
        return tuple(t for t, _, _ in self.integrations) or (None,)

    def deliver(self, group: NotificationGroup, target: Optional[str] = None) -> None:
        if target is None:
            self.dropped += 1
            return
        if group.targets is not None and target not in group.targets:
            self.deduplicated += 1
            return
        for t, notifier, send_resolved in self.integrations:
            if t != target:
                continue
            if not send_resolved:
                firing = tuple(a for a in group.alerts if a.status == FIRING)
                if not firing:
                    return
                group = NotificationGroup(firing, group_key=group.group_key, group_labels=group.group_labels)
            notifier.send(group)
            return
        raise self._error(f"no integration {target!r}")

    def __repr__(self) -> str:
        return f"Receiver({self.receiver_name!r}, {[t for t, _, _ in self.integrations]})"


def _host_port(text: Any, where: str) -> tuple[str, int]:
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{where}: smarthost must be host:port, got {text!r}")
    host, _, port = text.rpartition(":")
    if not port:
        raise ConfigError(f'address "{text}": port cannot be empty')
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"{where}: invalid port in smarthost {text!r}") from None


def _check_keys(d: Any, allowed: set, where: str) -> dict:
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: field {unknown[0]} not found (known: {', '.join(sorted(allowed))})")
    return dict(d)


def _build_receiver(spec: Any, i: int, glob_: dict, external: dict, channel: str) -> Receiver:
    where = f"receivers[{i}]"
    name = spec["name"]
    where = f"receiver {name!r}"
    integrations: list[tuple[str, Notifier, bool]] = []
    for key, items in spec.items():
        if key == "name":
            continue
        if key in ALERTMANAGER_INTEGRATIONS:
            raise ConfigError(
                f"{where}: {key} is an Alertmanager integration wedmetrics does not implement "
                f"(supported: {', '.join(SUPPORTED_INTEGRATIONS)}); keep a real Alertmanager for it "
                "and send to it with AlertmanagerNotifier")
        if key not in SUPPORTED_INTEGRATIONS:
            raise ConfigError(f"{where}: unknown integration {key!r} "
                              f"(supported: {', '.join(SUPPORTED_INTEGRATIONS)})")
        if not isinstance(items, list):
            raise ConfigError(f"{where}: {key} must be a list")
        for j, item in enumerate(items):
            target = f"{key}[{j}]"
            cname = f"{channel}.{key[:-8]}{j}"
            notifier, send_resolved = _integration(key, item or {}, f"{where}.{target}", glob_, cname,
                                                   name, external)
            integrations.append((target, notifier, send_resolved))
    return Receiver(channel, integrations, receiver_name=name)


_CHANNEL_OK = re.compile(r"[A-Za-z0-9_.:-]{1,48}")


def channel_id(receiver: str) -> str:
    """The delivery channel id of an Alertmanager receiver name.

    The name itself when it is a valid channel name of at most 48 characters
    (room for the integrations' ``.webhook0`` suffixes); otherwise its
    sanitised first 39 characters, ``-`` and 8 hex digits of its SHA-256, so
    that ``"team X"`` and ``"team_X"`` stay two channels.

    >>> channel_id("ops"), channel_id("team X")
    ('ops', 'team_X-73f39c34')
    """
    if _CHANNEL_OK.fullmatch(receiver):
        return receiver
    import hashlib

    digest = hashlib.sha256(receiver.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.:-]', '_', receiver)[:39]}-{digest}"


def _integration(key: str, c: Mapping, where: str, g: dict, cname: str, receiver: str,
                 external: dict) -> tuple[Notifier, bool]:
    common = {"send_resolved"}
    if key == "webhook_configs":
        c = _check_keys(c, common | {"url", "url_file", "max_alerts", "http_config", "timeout"}, where)
        url = c.get("url")
        if url is None and c.get("url_file"):
            url = open(c["url_file"], encoding="utf-8").read().strip()
        if not url:
            raise ConfigError(f"{where}: one of url or url_file must be configured")
        _no_http_config(c, where)
        n = AlertmanagerWebhookNotifier(url, receiver=receiver, max_alerts=int(c.get("max_alerts", 0)),
                                        name=cname, external_url=external.get("url", ""),
                                        timeout=parse_duration(c.get("timeout", 10)))
        return n, bool(c.get("send_resolved", True))
    if key == "email_configs":
        c = _check_keys(c, common | {"to", "from", "smarthost", "hello", "auth_username", "auth_password",
                                     "auth_password_file", "auth_identity", "require_tls", "headers",
                                     "html", "text", "tls_config"}, where)
        if not c.get("to"):
            raise ConfigError(f"{where}: missing to address in email config")
        smarthost = c.get("smarthost") or g.get("smtp_smarthost")
        if not smarthost:
            raise ConfigError("no global SMTP smarthost set")
        sender = c.get("from") or g.get("smtp_from")
        if not sender:
            raise ConfigError("no global SMTP from set")
        host, port = _host_port(smarthost, where)
        password = c.get("auth_password") or g.get("smtp_auth_password")
        pw_file = c.get("auth_password_file") or g.get("smtp_auth_password_file")
        if password is None and pw_file:
            password = open(pw_file, encoding="utf-8").read().strip()
        require_tls = c.get("require_tls", g.get("smtp_require_tls", True))
        n = EmailNotifier(host, port, sender, [t.strip() for t in str(c["to"]).split(",")],
                          username=c.get("auth_username") or g.get("smtp_auth_username"),
                          password=password, starttls=bool(require_tls) and port != 465,
                          implicit_tls=port == 465, name=cname)
        return n, bool(c.get("send_resolved", False))
    if key == "slack_configs":
        c = _check_keys(c, common | {"api_url", "api_url_file", "channel", "username", "title", "text",
                                     "color", "icon_emoji", "icon_url", "title_link", "pretext", "footer",
                                     "fallback", "actions", "fields", "link_names", "mrkdwn_in",
                                     "short_fields", "callback_id", "image_url", "thumb_url", "http_config"},
                        where)
        url = c.get("api_url") or g.get("slack_api_url")
        url_file = c.get("api_url_file") or g.get("slack_api_url_file")
        if url is None and url_file:
            url = open(url_file, encoding="utf-8").read().strip()
        if not url:
            raise ConfigError("no Slack API URL nor App token set either inline or in a file")
        _no_http_config(c, where)
        return SlackNotifier(url, name=cname), bool(c.get("send_resolved", False))
    if key == "sms_configs":
        c = _check_keys(c, common | {"url", "account_sid", "auth_token", "from", "to"}, where)
        for k in ("url", "account_sid", "auth_token", "from", "to"):
            if not c.get(k):
                raise ConfigError(f"{where}: missing {k} in sms config")
        to = c["to"] if isinstance(c["to"], list) else [c["to"]]
        return (SmsNotifier(c["url"], c["account_sid"], c["auth_token"], c["from"], to, name=cname),
                bool(c.get("send_resolved", True)))
    c = _check_keys(c, common | {"logger"}, where)
    return LogNotifier(c.get("logger") or "wedmetrics.alerts", name=cname), bool(c.get("send_resolved", True))


def _no_http_config(c: Mapping, where: str) -> None:
    http = c.get("http_config") or {}
    if set(http) - {"follow_redirects", "enable_http2"}:
        raise ConfigError(f"{where}: http_config ({', '.join(sorted(http))}) is not supported here; "
                          "put credentials in the URL's own secret or use a plain URL")


# -- routes, inhibition, intervals ----------------------------------------------------------

def _matchers(spec: Any, eq: Any, regex: Any, where: str) -> list[Matcher]:
    out: list[Matcher] = []
    for name, value in sorted((eq or {}).items()):
        if not _LABEL_NAME.match(str(name)):
            raise ConfigError(f"invalid label name \"{name}\"")
        out.append(Matcher(str(name), "=", str(value)))
    for name, value in sorted((regex or {}).items()):
        if not _LABEL_NAME.match(str(name)):
            raise ConfigError(f"invalid label name \"{name}\"")
        try:
            compile_re2(str(value))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        out.append(Matcher(str(name), "=~", str(value)))
    if spec is not None:
        if not isinstance(spec, list):
            raise ConfigError(f"{where}.matchers must be a list of strings")
        for line in spec:
            try:
                out.extend(parse_matcher_list(line))
            except ValueError as e:
                raise ConfigError(f"{where}.matchers: {e}") from None
    return out


def _route(spec: Any, where: str, root: bool, receivers: set, intervals: set) -> dict:
    r = _check_keys(spec, _ROUTE_KEYS, where)
    group_by = None
    if "group_by" in r and r["group_by"] is not None:
        group_by = [str(x) for x in r["group_by"]]
        seen = set()
        for name in group_by:
            if name == "...":
                if len(group_by) > 1:
                    raise ConfigError("cannot have wildcard group_by (`...`) and other labels at the same time")
            elif not _LABEL_NAME.match(name):
                raise ConfigError(f"invalid label name \"{name}\" in group_by list")
            if name in seen:
                raise ConfigError(f"duplicated label \"{name}\" in group_by")
            seen.add(name)
    if root:
        if not r.get("receiver"):
            raise ConfigError("root route must specify a default receiver")
        if r.get("match") or r.get("match_re") or r.get("matchers"):
            raise ConfigError("root route must not have any matchers")
        if r.get("continue"):
            raise ConfigError("cannot have continue in root route")
        if r.get("mute_time_intervals"):
            raise ConfigError("root route must not have any mute time intervals")
        if r.get("active_time_intervals"):
            raise ConfigError("root route must not have any active time intervals")
    if r.get("receiver") and r["receiver"] not in receivers:
        raise ConfigError(f"undefined receiver \"{r['receiver']}\" used in route")
    out: dict[str, Any] = {}
    if r.get("receiver"):
        out["receiver"] = r["receiver"]
    out["matchers"] = _matchers(r.get("matchers"), r.get("match"), r.get("match_re"), where)
    if group_by is not None:
        out["group_by"] = group_by
    if r.get("continue"):
        out["continue"] = True
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if r.get(key) is not None:
            value = parse_duration(r[key])
            if key != "group_wait" and value == 0:
                raise ConfigError(f"{key} cannot be zero")
            out[key] = value
    for key in ("mute_time_intervals", "active_time_intervals"):
        for name in r.get(key) or ():
            if name not in intervals:
                raise ConfigError(f"undefined time interval \"{name}\" used in route")
        if r.get(key):
            out[key] = list(r[key])
    out["routes"] = [_route(c, f"{where}.routes[{i}]", False, receivers, intervals)
                     for i, c in enumerate(r.get("routes") or ())]
    return out


def _inhibit_rule(spec: Any, i: int) -> dict:
    where = f"inhibit_rules[{i}]"
    r = _check_keys(spec, _INHIBIT_KEYS, where)
    equal = [str(x) for x in r.get("equal") or ()]
    for name in equal:
        if not _LABEL_NAME.match(name):
            raise ConfigError(f"invalid label name \"{name}\"")
    return {"source_matchers": _matchers(r.get("source_matchers"), r.get("source_match"),
                                         r.get("source_match_re"), where + ".source"),
            "target_matchers": _matchers(r.get("target_matchers"), r.get("target_match"),
                                         r.get("target_match_re"), where + ".target"),
            "equal": equal}


def _intervals(data: dict) -> list[dict]:
    out, seen = [], set()
    for key, what in (("mute_time_intervals", "mute time interval"), ("time_intervals", "time interval")):
        for spec in data.get(key) or ():
            spec = _check_keys(spec, {"name", "time_intervals"}, key)
            if not spec.get("name"):
                raise ConfigError(f"missing name in {what}")
            if spec["name"] in seen:
                raise ConfigError(f"{what} \"{spec['name']}\" is not unique")
            seen.add(spec["name"])
            # no ranges: an interval that never holds (Alertmanager's Intervener matches none)
            out.append({"name": spec["name"], "time_intervals": list(spec.get("time_intervals") or [])})
    return out


# -- the file -------------------------------------------------------------------------------

@dataclasses.dataclass
class AlertmanagerConfig:
    """A loaded ``alertmanager.yml``.

    Attributes
    ----------
    routing : RoutingConfig
        Route tree, inhibit rules and time intervals, in exact-Alertmanager mode.
    receivers : dict of str to Receiver
        One notifier per receiver, by its name in the file (its channel id
        is ``receiver.name``, see :func:`channel_id`).
    global_ : dict
        The ``global`` section with Alertmanager's defaults filled in.
    resolve_timeout : float
        Seconds after which an alert received without ``endsAt`` resolves.
    templates : list of str
        Template files found (Go templates are recorded, not rendered).
    original : str
        The YAML text, as ``/api/v2/status`` shows it.
    """

    routing: RoutingConfig
    receivers: dict
    global_: dict
    resolve_timeout: float
    templates: list
    original: str

    def notifiers(self) -> list[Notifier]:
        return list(self.receivers.values())

    def channel_ids(self) -> dict[str, str]:
        """Receiver name -> delivery channel id."""
        return {name: r.name for name, r in self.receivers.items()}

    def set_external_url(self, url: str) -> None:
        """Set the ``externalURL`` every webhook integration sends."""
        for r in self.receivers.values():
            for _, n, _ in r.integrations:
                if isinstance(n, AlertmanagerWebhookNotifier):
                    n.external_url = url


def load_alertmanager_config(source: Any, *, external_url: str = "") -> AlertmanagerConfig:
    """Load an ``alertmanager.yml`` from a path or from its text.

    Parameters
    ----------
    source : str or path
        A path (``os.PathLike``, or a one-line string naming an existing
        file, whatever its extension) or the YAML text.
    external_url : str
        Where people reach this Alertmanager (its ``--web.external-url``):
        the ``externalURL`` of webhook payloads.

    Raises
    ------
    ConfigError
        (a ``ValueError``) with Alertmanager's message for what it refuses,
        and for integrations wedmetrics does not implement.
    """
    text, base = _read(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"alertmanager config is not valid YAML: {e}") from None
    if data is None:
        raise ConfigError("no route provided in config")
    if not isinstance(data, Mapping):
        raise ConfigError("alertmanager config must be a mapping at the top level")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ConfigError(f"field {unknown[0]} not found in type config.plain")
    g = _check_keys(data.get("global"), _GLOBAL_KNOWN, "global")
    g = {**_GLOBAL_DEFAULTS, **g}
    receivers_spec = data.get("receivers") or []
    if not isinstance(receivers_spec, list):
        raise ConfigError("receivers must be a list")
    receivers: dict[str, Receiver] = {}
    channels: dict[str, str] = {}
    external = {"url": external_url}
    for i, spec in enumerate(receivers_spec):
        if not isinstance(spec, Mapping):
            raise ConfigError(f"receivers[{i}] must be a mapping")
        name = spec.get("name")
        if not name:
            raise ConfigError("missing name in receiver")
        if not isinstance(name, str):
            raise ConfigError(f"receivers[{i}]: name must be a string, got {name!r}")
        if name in receivers:
            raise ConfigError(f"notification config name \"{name}\" is not unique")
        cid = channel_id(name)
        if cid in channels:
            raise ConfigError(f"receivers \"{channels[cid]}\" and \"{name}\" map to the same delivery "
                              f"channel id {cid!r}; rename one of them")
        channels[cid] = name
        receivers[name] = _build_receiver(spec, i, g, external, cid)
    intervals = _intervals(data)
    if data.get("route") is None:
        raise ConfigError("no routes provided")
    route = _route(data["route"], "route", True, set(receivers), {i["name"] for i in intervals})
    inhibit = [_inhibit_rule(r, i) for i, r in enumerate(data.get("inhibit_rules") or ())]
    try:
        routing = RoutingConfig.model_validate({"route": route, "inhibit_rules": inhibit,
                                                "mute_time_intervals": intervals, "alertmanager": True})
    except ValueError as e:
        raise ConfigError(str(e)) from None
    templates = []
    for pattern in data.get("templates") or ():
        full = pattern if os.path.isabs(pattern) or base is None else os.path.join(base, pattern)
        templates.extend(sorted(glob.glob(full)))
    return AlertmanagerConfig(routing=routing, receivers=receivers, global_=g,
                              resolve_timeout=parse_duration(g["resolve_timeout"]), templates=templates,
                              original=text)


def _read(source: Any) -> tuple[str, Optional[str]]:
    path = None
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
    elif isinstance(source, str) and "\n" not in source.strip():
        candidate = source.strip()
        if candidate and os.path.isfile(candidate):
            path = candidate
        elif candidate and ":" not in candidate:
            raise ConfigError(f"alertmanager config file {candidate!r} not found "
                              "(give a path to an existing file, or the YAML text)")
    elif not isinstance(source, str):
        raise ConfigError(f"give a path or the YAML text, got {type(source).__name__}")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read(), os.path.dirname(os.path.abspath(path))
        except OSError as e:
            raise ConfigError(f"cannot read alertmanager config file {path!r}: {e}") from None
    return source, None
