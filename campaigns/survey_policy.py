"""The CSAT survey's rules: who gets a survey, when, how often it is retried, what a score means."""

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class SurveyPolicy:
    delay: timedelta = timedelta(minutes=30)  # after the support call ended
    min_call: timedelta = timedelta(seconds=20)  # shorter calls get no survey
    period: timedelta = timedelta(days=30)  # at most one survey per client in this period
    max_lateness: timedelta = timedelta(hours=4)  # past the due time, give up
    max_attempts: int = 3
    retry_delay: timedelta = timedelta(minutes=10)
    low_score_threshold: int = 4  # any score below it becomes a callback task
    callback_working_minutes: int = 120
    default_timezone: str = "Europe/Moscow"
    default_locale: str = "ru"

    def is_low(self, score: int) -> bool:
        return score < self.low_score_threshold
