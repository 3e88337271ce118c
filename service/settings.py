"""Settings: the one place that reads the environment.

Every other module receives a :class:`Settings` (or plain values taken from it) as an argument. A bad value
raises :class:`SettingsError` whose message is one line naming the variable and what to do about it.

Variables
---------
FATIGUE_DATABASE_URL     PostgreSQL URL (default ``postgresql://postgres@127.0.0.1:5432/fatigue``).
FATIGUE_API_ADMIN_DATABASE_URL  PostgreSQL URL the API uses for administrator tokens (login role
                         ``fatigue_web_admin``); default ``FATIGUE_DATABASE_URL``. Set it whenever the API logs in
                         as ``fatigue_web``, which may not become ``fatigue_admin`` (docs/security.md).
FATIGUE_MQTT_URL         ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (default
                         ``mqtt://127.0.0.1:1883``).
FATIGUE_TIMEZONE         IANA zone for local quantities (default ``Europe/London``).
FATIGUE_PSEUDONYM_KEY    Master key for research pseudonyms, hex (>= 32 bytes); or
FATIGUE_PSEUDONYM_KEY_FILE  a file holding it (the file wins over nothing, the variable wins over the file).
FATIGUE_PSEUDONYM_KEY_VERSION  integer key version recorded in the export ledger (default 1).
FATIGUE_INGEST_GROUP     shared-subscription group of the ingesters (default ``ingest``).
FATIGUE_OUTBOX_DIR       folder for weekly reports (default ``./var/outbox``).
FATIGUE_EXPORTS_DIR      folder for researchers' exports fulfilled by ``fatigue serve`` (default ``./var/exports``;
                         never the outbox: managers' and researchers' files are kept apart).
FATIGUE_SMTP_URL         ``smtp://host:port`` for e-mailing reports; unset means no e-mail.
FATIGUE_LOG_LEVEL        ``debug|info|warning|error`` (default ``info``).
FATIGUE_INGEST_MAX_LATENESS_DAYS  samples older than this are dead-lettered ``too_late`` (default 30).
FATIGUE_METRICS_ADDR     ``host:port`` where long-running processes (``fatigue ingest``, ``fatigue serve``) serve
                         Prometheus metrics; ``:9108`` or ``0.0.0.0:9108`` listens on every interface (needed in
                         a container), ``127.0.0.1:9108`` on loopback only; unset or ``off`` serves none.
FATIGUE_PROGRAMME        the force's programme: a TOML file or a packaged version (default ``programme-v2``);
                         it drives the ingest window, features, models and flags (risk/programme.py).
FATIGUE_CRASH_POINTS     fault-injection tests only: ``after_commit:0.1,mid_copy:0.05`` (see
                         ``ingest.crashpoints``); never set in production.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["MetricsAddress", "MqttEndpoint", "Settings", "SettingsError", "load_settings", "parse_metrics_addr"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/fatigue"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
_GROUP_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class MqttEndpoint:
    """Where the broker is and how to log in to it."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MetricsAddress:
    """Where to serve Prometheus metrics (``host`` ``0.0.0.0`` = every interface)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Validated configuration, passed down explicitly (never read from the environment elsewhere)."""

    database_url: str = DEFAULT_DATABASE_URL
    mqtt_url: str = DEFAULT_MQTT_URL
    timezone: str = "Europe/London"
    pseudonym_key: bytes | None = field(default=None, repr=False)
    pseudonym_key_version: int = 1
    ingest_group: str = "ingest"
    outbox_dir: Path = Path("var/outbox")
    exports_dir: Path = Path("var/exports")
    smtp_url: str | None = None
    log_level: str = "info"
    crash_points: str | None = None
    ingest_max_lateness_days: int = 30
    api_admin_database_url: str | None = None
    metrics_addr: MetricsAddress | None = None
    programme: str | None = None

    @property
    def mqtt(self) -> MqttEndpoint:
        """The broker endpoint parsed from :attr:`mqtt_url`."""
        return parse_mqtt_url(self.mqtt_url, "FATIGUE_MQTT_URL")

    @property
    def tz(self) -> ZoneInfo:
        """The local time zone as a :class:`zoneinfo.ZoneInfo`."""
        return ZoneInfo(self.timezone)


def parse_mqtt_url(url: str, variable: str) -> MqttEndpoint:
    """Parse ``mqtt://user:pass@host:port`` (``mqtts`` for TLS); raise :class:`SettingsError` if bad."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise SettingsError(f"{variable}: expected mqtt://host[:port] or mqtts://host[:port], got {url!r}")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise SettingsError(f"{variable}: bad port in {url!r}") from exc
    return MqttEndpoint(parts.hostname, port, parts.scheme == "mqtts", parts.username, parts.password)


def parse_metrics_addr(raw: str | None, variable: str = "FATIGUE_METRICS_ADDR") -> MetricsAddress | None:
    """Parse ``host:port``, ``:port`` (every interface) or ``off``; raise :class:`SettingsError` if bad."""
    if raw is None or raw.strip().lower() in ("", "off", "none"):
        return None
    host, sep, port = raw.strip().rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or not re.fullmatch(r"[A-Za-z0-9_.:-]+", host):
        raise SettingsError(f"{variable}: expected host:port, :port or off (e.g. 0.0.0.0:9108), got {raw!r}")
    return MetricsAddress(host, int(port))


def _database_url(env: Mapping[str, str]) -> str:
    url = env.get("FATIGUE_DATABASE_URL", DEFAULT_DATABASE_URL)
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise SettingsError(f"FATIGUE_DATABASE_URL: expected postgresql://..., got scheme of {url[:16]!r}")
    return url


def _timezone(env: Mapping[str, str]) -> str:
    name = env.get("FATIGUE_TIMEZONE", "Europe/London")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"FATIGUE_TIMEZONE: unknown IANA time zone {name!r}") from exc
    return name


def _pseudonym_key(env: Mapping[str, str]) -> bytes | None:
    raw = env.get("FATIGUE_PSEUDONYM_KEY")
    source = "FATIGUE_PSEUDONYM_KEY"
    if raw is None and "FATIGUE_PSEUDONYM_KEY_FILE" in env:
        source = "FATIGUE_PSEUDONYM_KEY_FILE"
        try:
            raw = Path(env[source]).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{source}: cannot read key file ({exc.__class__.__name__})") from exc
    if raw is None:
        return None
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{source}: expected hex digits (make one with: openssl rand -hex 32)") from exc
    if len(key) < 32:
        raise SettingsError(f"{source}: key too short ({len(key)} bytes, need >= 32; openssl rand -hex 32)")
    return key


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}: expected a positive integer, got {raw!r}")
    return int(raw)


def _crash_points(env: Mapping[str, str]) -> str | None:
    spec = env.get("FATIGUE_CRASH_POINTS") or None
    if spec is not None and not re.fullmatch(r"[a-z_]+(:[0-9.]+)?(,[a-z_]+(:[0-9.]+)?)*", spec):
        raise SettingsError(f"FATIGUE_CRASH_POINTS: expected name:rate[,name:rate], got {spec!r}")
    return spec


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the ``FATIGUE_*`` variables.

    Parameters
    ----------
    env : mapping, optional
        The environment to read; ``os.environ`` when omitted (tests pass their own).

    Raises
    ------
    SettingsError
        One line naming the offending variable.
    """
    env = os.environ if env is None else env
    mqtt_url = env.get("FATIGUE_MQTT_URL", DEFAULT_MQTT_URL)
    parse_mqtt_url(mqtt_url, "FATIGUE_MQTT_URL")
    group = env.get("FATIGUE_INGEST_GROUP", "ingest")
    if not _GROUP_RE.match(group):
        raise SettingsError(f"FATIGUE_INGEST_GROUP: must match [A-Za-z0-9_-]{{1,64}}, got {group!r}")
    smtp = env.get("FATIGUE_SMTP_URL") or None
    if smtp is not None and urlsplit(smtp).scheme not in ("smtp", "smtps"):
        raise SettingsError(f"FATIGUE_SMTP_URL: expected smtp://host:port, got {smtp!r}")
    level = env.get("FATIGUE_LOG_LEVEL", "info").lower()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"FATIGUE_LOG_LEVEL: expected one of {', '.join(_LOG_LEVELS)}, got {level!r}")
    return Settings(
        database_url=_database_url(env),
        mqtt_url=mqtt_url,
        timezone=_timezone(env),
        pseudonym_key=_pseudonym_key(env),
        pseudonym_key_version=_positive_int(env, "FATIGUE_PSEUDONYM_KEY_VERSION", 1),
        ingest_group=group,
        outbox_dir=Path(env.get("FATIGUE_OUTBOX_DIR", "var/outbox")),
        exports_dir=Path(env.get("FATIGUE_EXPORTS_DIR", "var/exports")),
        smtp_url=smtp,
        log_level=level,
        crash_points=_crash_points(env),
        ingest_max_lateness_days=_positive_int(env, "FATIGUE_INGEST_MAX_LATENESS_DAYS", 30),
        api_admin_database_url=_admin_url(env),
        metrics_addr=parse_metrics_addr(env.get("FATIGUE_METRICS_ADDR")),
        programme=env.get("FATIGUE_PROGRAMME") or None,
    )


def _admin_url(env: Mapping[str, str]) -> str | None:
    url = env.get("FATIGUE_API_ADMIN_DATABASE_URL") or None
    if url is not None and urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise SettingsError("FATIGUE_API_ADMIN_DATABASE_URL: expected postgresql://...")
    return url
