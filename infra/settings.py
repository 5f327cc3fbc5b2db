"""Settings from the environment (`RINGBACK_...`) and an optional `.env`, with working defaults."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RINGBACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    log_level: str = "INFO"

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
    def _range_is_ordered(cls, value: int, info: object) -> int:
        data = getattr(info, "data", {})
        if value <= data.get("rtp_port_min", 0):
            raise ValueError("rtp_port_max must be above rtp_port_min")
        return value

    @property
    def prompt_cache_dir(self) -> Path:
        return self.data_dir / "prompts"
