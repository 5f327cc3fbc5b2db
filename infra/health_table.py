"""The table `/healthz` writes to: one row per instance, touched by every health check, so the
check proves the database takes writes, not only that it answers."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from infra.db import Base, UtcDateTime


class HealthProbe(Base):
    __tablename__ = "health_probes"

    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
