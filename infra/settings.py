"""Settings from the environment (`RINGBACK_...`) and an optional `.env`, with working defaults."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from standardwebhooks import Webhook

DEV_WEBHOOK_SECRET = "whsec_" + "ZGV2ZWxvcG1lbnQtb25seS13ZWJob29rLXNlY3JldA=="
DEV_OUTBOUND_SECRET = "whsec_" + "ZGV2ZWxvcG1lbnQtb25seS1vdXRib3VuZC1zZWNyZXQ="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RINGBACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # The service.
    database_url: str | None = Field(None, description="default: SQLite file in data_dir")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    instance_name: str | None = Field(
        None, max_length=80, description="default: <hostname>:<http_port>; unique per instance"
    )

    # The CRM: its webhook secret (inbound), where our events go and how they are signed.
    crm_webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    crm_url: str | None = None
    crm_outbound_secret: SecretStr = SecretStr(DEV_OUTBOUND_SECRET)
    crm_webhook_tolerance_s: int = Field(300, ge=10, le=3600)
    outbox_max_backoff_s: float = Field(300.0, gt=0)
    default_region: str = "RU"
    default_timezone: str = "Europe/Moscow"
    default_locale: str = "ru"
    company_name: str = "ringback"

    # Dialing limits.
    channel_limit: int = Field(10, ge=1, le=2000)
    calls_per_second: float = Field(2.0, gt=0, le=200)
    lease_s: float = Field(120.0, ge=10)
    dispatch_interval_s: float = Field(1.0, gt=0, le=60)
    sip_dial_template: str = Field("{phone}", description="SIP target for a phone number")

    # The CSAT survey.
    survey_delay_s: float = Field(1800.0, ge=0)
    survey_min_call_s: float = Field(20.0, ge=0)
    survey_period_days: float = Field(30.0, ge=0)
    survey_max_lateness_s: float = Field(4 * 3600.0, ge=0)
    survey_max_attempts: int = Field(3, ge=1, le=10)
    survey_retry_delay_s: float = Field(600.0, ge=1)
    survey_no_input_s: float = Field(6.0, gt=0, le=60)
    survey_texts: dict[str, dict[str, str]] = Field(default_factory=dict)
    low_score_threshold: int = Field(4, ge=2, le=5)
    low_score_callback_working_minutes: int = Field(120, ge=1)

    # The business calendar and the clients' calling window.
    calendar_timezone: str = "Europe/Moscow"
    calendar_hours: str = "mon-fri 10:00-19:00"
    calendar_country: str | None = "RU"
    calendar_extra_holidays: list[str] = Field(default_factory=list)
    calendar_extra_working_days: list[str] = Field(default_factory=list)
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
    sip_port: int = Field(5060, ge=0, le=65535)
    rtp_port_min: int = Field(20000, ge=1024, le=65534)
    rtp_port_max: int = Field(29999, ge=1025, le=65535)
    sip_register_expires: int = Field(300, ge=10)
    ring_timeout_s: float = Field(30.0, gt=0, le=300)

    # Speech.
    tts_language: str = "en"
    tts_rate_wpm: int | None = Field(None, ge=80, le=400)

    @field_validator("rtp_port_max")
    @classmethod
    def _range_is_ordered(cls, value: int, info: ValidationInfo) -> int:
        if value <= info.data.get("rtp_port_min", 0):
            raise ValueError("rtp_port_max must be above rtp_port_min")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("crm_webhook_secret", "crm_outbound_secret")
    @classmethod
    def _usable_webhook_secret(cls, value: SecretStr) -> SecretStr:
        try:
            Webhook(value.get_secret_value())
        except Exception as exc:  # the package raises several kinds for unusable secrets
            raise ValueError("not a Standard Webhooks secret (whsec_ + base64)") from exc
        return value

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Self:
        if self.environment != "production":
            return self
        defaults = {
            "RINGBACK_CRM_WEBHOOK_SECRET": (self.crm_webhook_secret, DEV_WEBHOOK_SECRET),
            "RINGBACK_CRM_OUTBOUND_SECRET": (self.crm_outbound_secret, DEV_OUTBOUND_SECRET),
        }
        unset = [name for name, (value, default) in defaults.items()
                 if value.get_secret_value() == default]
        if unset:
            raise ValueError(f"production refuses the development secrets: set {', '.join(unset)}")
        return self

    @property
    def prompt_cache_dir(self) -> Path:
        return self.data_dir / "prompts"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ringback.db'}"
