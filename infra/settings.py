"""Settings from the environment (`RINGBACK_...`) and an optional `.env`, with working defaults.

Every value is checked here, when `Settings()` is built, as far as the shared plumbing can judge
it: types and ranges, time zones, the phone region, URLs, secrets, the dial template, JSON. What
only a domain package can judge (hours syntax, the holiday country, survey locales and texts) is
checked by `api.config_check`, with the parsers that will use the values. Messages name the
setting and never repeat a secret.
"""

import base64
import binascii
import json
import string
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError
from standardwebhooks import Webhook

DEV_WEBHOOK_SECRET = "whsec_" + "ZGV2ZWxvcG1lbnQtb25seS13ZWJob29rLXNlY3JldA=="
DEV_OUTBOUND_SECRET = "whsec_" + "ZGV2ZWxvcG1lbnQtb25seS1vdXRib3VuZC1zZWNyZXQ="
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
SECRET_HINT = (
    "generate one with: python3 -c \"import base64,secrets; "
    "print('whsec_'+base64.b64encode(secrets.token_bytes(32)).decode())\" "
    "or: echo \"whsec_$(openssl rand -base64 32)\""
)
SECRET_SETTINGS = frozenset({"crm_webhook_secret", "crm_outbound_secret", "sip_password"})
"""Shown as `***` wherever settings are shown."""

DIAL_PLACEHOLDERS = frozenset({"phone", "digits"})
DATABASE_HINT = "write sqlite:///path/to/ringback.db or postgresql+psycopg://user:password@host/db"
CHECK_URL_EXAMPLE = "https://crm.example/ringback/clients/{client_id}/call-check"


class UnavailablePolicy(StrEnum):
    """What the pre-dial CRM check (campaigns.crm_check) does when the CRM gives no usable
    answer. Defined here, in the leaf, because a setting holds it; campaigns re-exports it."""

    CALL = "call"  # dial anyway: the check is optional, a CRM outage must not stop warnings
    SKIP = "skip"  # drop this attempt as not wanted
    POSTPONE = "postpone"  # try again after crm_check_postpone_s


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RINGBACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # The service.
    database_url: str | None = Field(None, description="default: SQLite file in data_dir")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    http_request_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a request (headers and body) not whole after this: closed"
    )
    http_max_connections: int | None = Field(
        None, ge=1, description="default: what ulimit -n leaves after the calls; only lowers it"
    )
    public_url: str | None = Field(
        None, description="where people reach ringback, e.g. https://ringback.example; https "
        "marks the session cookie Secure"
    )
    instance_name: str | None = Field(
        None, max_length=80, description="default: <hostname>:<http_port>; unique per instance"
    )
    retention_days: int | None = Field(
        None, ge=1, description="phone numbers of finished jobs purged after this; unset: kept"
    )

    # The CRM: its webhook secret (inbound), where our events go and how they are signed.
    crm_webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    crm_url: str | None = Field(None, description="http(s) URL our events are POSTed to")
    crm_outbound_secret: SecretStr = SecretStr(DEV_OUTBOUND_SECRET)
    crm_webhook_tolerance_s: int = Field(300, ge=10, le=3600)
    outbox_max_backoff_s: float = Field(300.0, gt=0)
    # The pre-dial check: the CRM is asked just before a warning call whether it is still wanted.
    crm_check_url: str | None = Field(
        None, description="GET URL template with {client_id}; unset: no check"
    )
    crm_check_timeout_s: float = Field(2.0, ge=0.1, le=10)
    crm_check_on_unavailable: UnavailablePolicy = UnavailablePolicy.CALL
    crm_check_postpone_s: float = Field(300.0, ge=1, le=86400)
    default_region: str = "RU"
    default_timezone: str = "Europe/Moscow"
    default_locale: str = "ru"
    company_name: str = "ringback"
    company_name_spoken: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="JSON: locale -> the name as spoken in that language"
    )

    # Overdue callback tasks: escalated at the deadline and once more this long after it.
    supervisor_url: str | None = Field(
        None, description="http(s) URL escalations are POSTed to; unset: the CRM's events only"
    )
    escalation_second_after_s: float = Field(
        3600.0, gt=0, le=30 * 86400, description="past the deadline: the second escalation"
    )

    # Dialing limits.
    channel_limit: int = Field(10, ge=1, le=2000)
    calls_per_second: float = Field(2.0, gt=0, le=200)
    lease_s: float = Field(120.0, ge=10)
    dispatch_interval_s: float = Field(1.0, gt=0, le=60)
    sip_dial_template: str = Field("{phone}", description="SIP target for a phone number")

    # The CSAT survey.
    survey_delay_s: float = Field(1800.0, ge=0, le=30 * 86400)
    survey_min_call_s: float = Field(20.0, ge=0)
    survey_period_days: float = Field(30.0, ge=0)
    survey_max_lateness_s: float = Field(4 * 3600.0, ge=0, le=30 * 86400)
    survey_max_attempts: int = Field(3, ge=1, le=10)
    survey_retry_delay_s: float = Field(600.0, ge=1)
    survey_no_input_s: float = Field(6.0, gt=0, le=60)
    survey_texts: Annotated[dict[str, dict[str, str]], NoDecode] = Field(default_factory=dict)
    low_score_threshold: int = Field(4, ge=2, le=5)
    low_score_callback_working_minutes: int = Field(120, ge=1)

    # The warning calls (balance.low, campaign.stopping).
    warning_max_attempts: int = Field(4, ge=1, le=10)
    warning_retry_delays: str = Field(
        "15m, 1h, next-window",
        description="waits after attempt 1, 2, ... (the last repeats): 90s, 15m, 2h, next-window",
    )
    warning_period_hours: float = Field(24.0, ge=0, description="one warning per reason per this")
    warning_max_lateness_s: float = Field(3 * 86400.0, ge=0, le=30 * 86400)
    warning_calling_hours: str | None = Field(None, description="default: calling_window_hours")
    warning_no_input_s: float = Field(6.0, gt=0, le=60)
    warning_texts: Annotated[dict[str, dict[str, str]], NoDecode] = Field(default_factory=dict)
    manager_phone: str | None = Field(
        None, description="key 2 puts the client through here when the event names no manager"
    )
    manager_callback_working_minutes: int = Field(120, ge=1)

    # Callback tasks from the CRM's call.missed (and callback.requested without a time).
    missed_call_callback_working_minutes: int = Field(30, ge=1)

    # The business calendar and the clients' calling window.
    calendar_timezone: str = "Europe/Moscow"
    calendar_hours: str = "mon-fri 10:00-19:00"
    calendar_country: str | None = "RU"
    calendar_extra_holidays: Annotated[list[date], NoDecode] = Field(default_factory=list)
    calendar_extra_working_days: Annotated[list[date], NoDecode] = Field(default_factory=list)
    calling_window_hours: str = "mon-fri 09:00-21:00; sat-sun 10:00-20:00"

    # SIP account: without a registrar, calls go straight to the target's host.
    sip_registrar: str | None = Field(None, description="host[:port] of the registrar / proxy")
    sip_user: str = "ringback"
    sip_password: str | None = None
    sip_auth_user: str | None = None
    sip_domain: str | None = None
    sip_display_name: str | None = "ringback"
    # Our own addresses.
    sip_local_host: str = "127.0.0.1"
    sip_public_host: str | None = Field(None, description="advertised SIP/SDP address (NAT)")
    sip_port: int = Field(5060, ge=0, le=65535)
    rtp_port_min: int = Field(20000, ge=1024, le=65534)
    rtp_port_max: int = Field(29999, ge=1025, le=65535)
    sip_register_expires: int = Field(300, ge=10)
    ring_timeout_s: float = Field(30.0, gt=0, le=300)
    max_hold_s: float = Field(60.0, gt=0, le=600, description="a held call is hung up after this")

    # Inbound calls, until the inbound line exists: refused at once, or a message played.
    inbound_status: int = Field(480, description="the final response to every inbound call")
    inbound_retry_after_s: int | None = Field(300, ge=0, description="unset: no Retry-After")
    inbound_message: str | None = Field(None, min_length=1, max_length=1000)
    inbound_message_locale: str | None = Field(None, description="default: default_locale")
    inbound_max_message_calls: int = Field(10, ge=1, le=1000)

    # Speech.
    tts_language: str = "en"
    tts_rate_wpm: int | None = Field(None, ge=80, le=400)
    tts_voices: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(
        default_factory=dict, description="JSON: language -> speech engine options"
    )

    @field_validator("rtp_port_max")
    @classmethod
    def _range_is_ordered(cls, value: int, info: ValidationInfo) -> int:
        if value <= info.data.get("rtp_port_min", 0):
            raise ValueError("must be above RINGBACK_RTP_PORT_MIN")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("crm_webhook_secret", "crm_outbound_secret")
    @classmethod
    def _usable_webhook_secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("environment") == "production":
            _check_production_secret(value.get_secret_value())
        else:
            _check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("default_timezone", "calendar_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _check_zone(value)
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}: use a code like RU, DE or US")
        return region

    @field_validator("company_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty (it is spoken in the survey)")
        return value

    @field_validator("sip_dial_template")
    @classmethod
    def _dial_template(cls, value: str) -> str:
        _check_dial_template(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is not None:
            _check_database_url(value)
        return value

    @field_validator("crm_url", "public_url", "supervisor_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_http_url(value)
        return value

    @field_validator("crm_check_url")
    @classmethod
    def _check_url_template(cls, value: str | None) -> str | None:
        if value is not None:
            _check_check_url(value)
        return value

    @field_validator("crm_check_on_unavailable", mode="before")
    @classmethod
    def _lower_case_policy(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("survey_texts", "warning_texts", mode="before")
    @classmethod
    def _texts_json(cls, value: object) -> object:
        return _decode_json(value, "a JSON object: locale -> prompt id -> text")

    @field_validator("tts_voices", mode="before")
    @classmethod
    def _voices_json(cls, value: object) -> object:
        return _decode_json(value, 'a JSON object: language -> options, like {"ru": {...}}')

    @field_validator("company_name_spoken", mode="before")
    @classmethod
    def _spoken_json(cls, value: object) -> object:
        return _decode_json(value, 'a JSON object: locale -> spoken name, like {"ru": "..."}')

    @field_validator("calendar_extra_holidays", "calendar_extra_working_days", mode="before")
    @classmethod
    def _iso_dates(cls, value: object) -> list[date]:
        decoded = _decode_json(value, 'a JSON list of dates like ["2026-12-31"]')
        if not isinstance(decoded, list):
            raise ValueError('expected a JSON list of dates like ["2026-12-31"]')
        return [_parse_iso_date(item) for item in decoded]

    @property
    def prompt_cache_dir(self) -> Path:
        return self.data_dir / "prompts"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ringback.db'}"


def _check_webhook_secret(secret: str) -> None:
    try:
        Webhook(secret)
    except Exception as exc:  # the package raises several kinds for unusable secrets
        raise ValueError(f"not a Standard Webhooks secret (whsec_ + base64); {SECRET_HINT}") \
            from exc


def _check_production_secret(secret: str) -> None:
    """`whsec_` + strict base64 of at least 24 bytes, and not a development secret."""
    if secret in (DEV_WEBHOOK_SECRET, DEV_OUTBOUND_SECRET):
        raise ValueError(f"production refuses the public development secret; {SECRET_HINT}")
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must be whsec_ + base64 of random bytes; {SECRET_HINT}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"not valid base64 after whsec_; {SECRET_HINT}") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"too short: production needs at least {MIN_SECRET_BYTES} random bytes; {SECRET_HINT}"
        )


def _check_zone(name: str) -> None:
    if name.strip() == "localtime":
        raise ValueError("name the zone (like Europe/Moscow): localtime depends on the host")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name like Europe/Moscow") \
            from None


def _check_dial_template(template: str) -> None:
    """Only `{phone}` and `{digits}`, at least one of them, plain (no conversion or format)."""
    fields = _placeholders(template)
    other = sorted(set(fields) - {f"{{{name}}}" for name in DIAL_PLACEHOLDERS})
    if other:
        raise ValueError(f"only {{phone}} and {{digits}} may be used, not {', '.join(other)}")
    if not fields:
        raise ValueError("must contain {phone} or {digits}, e.g. sip:{digits}@trunk.example.net")


def _check_check_url(template: str) -> None:
    """An http(s) URL with `{client_id}`, plain, and no other placeholder."""
    fields = _placeholders(template)
    other = sorted(set(fields) - {"{client_id}"})
    if other:
        raise ValueError(f"only {{client_id}} may be used, not {', '.join(other)}")
    if not fields:
        raise ValueError(f"must contain {{client_id}}, e.g. {CHECK_URL_EXAMPLE}")
    _check_http_url(template.format(client_id="client"))


def _placeholders(template: str) -> list[str]:
    """Every `{...}` of a str.format template as written."""
    try:
        return [_field_text(name, conversion, spec)
                for _, name, spec, conversion in string.Formatter().parse(template)
                if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad syntax ({exc}); write a literal brace as {{{{ or }}}}") from None


def _field_text(name: str, conversion: str | None, spec: str | None) -> str:
    return "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") \
        + "}"


def _check_database_url(url: str) -> None:
    """SQLite files and PostgreSQL through psycopg 3: the databases ringback is tested on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL: {DATABASE_HINT}") from None
    driver = parsed.drivername
    if driver == "postgresql+psycopg" or (
        driver == "sqlite" and parsed.database not in (None, "", ":memory:")
    ):
        return
    if driver == "sqlite":
        raise ValueError("SQLite needs a file: write sqlite:///path/to/ringback.db")
    if driver.startswith("postgres"):
        raise ValueError(
            f"{driver}:// is not supported: write postgresql+psycopg://user:password@host/db "
            "(ringback uses the psycopg 3 driver)"
        )
    raise ValueError(f"{driver}:// is not supported (SQLite and PostgreSQL only): {DATABASE_HINT}")


def _check_http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")


def _decode_json(value: object, expected: str) -> object:
    """A value from the environment or `.env` is JSON text; one given in code is used as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc}): expected {expected}") from None


def _parse_iso_date(value: object) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"bad date {value!r}: expected YYYY-MM-DD")
