"""The sign-in throttle's rule, apart from its storage (`SignInFailure` rows, api.people).

Failures are counted per key ("user:<name>", "ip:<address>") in a window that starts at the
first failure; the failure that reaches the key's limit locks the key for `lockout`. While a key
is locked, no password is even checked. A window or a lock that has run out starts afresh.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottlePolicy:
    user_failures: int = 5  # per username, known or not
    ip_failures: int = 20  # per address: an office behind one NAT has several people
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)

    def limit(self, key: str) -> int:
        return self.ip_failures if key.startswith("ip:") else self.user_failures


@dataclass(frozen=True)
class Count:
    """One key's state: failures since `first_at`, and the lock, if any."""

    failures: int
    first_at: datetime
    locked_until: datetime | None = None


def locked_until(count: Count | None, now: datetime) -> datetime | None:
    """When the key's lock ends, or None if it is not locked now."""
    if count is None or count.locked_until is None or count.locked_until <= now:
        return None
    return count.locked_until


def after_failure(count: Count | None, now: datetime, limit: int,
                  policy: ThrottlePolicy) -> Count:
    """The key's state after one more failure at `now`."""
    if count is None or now - count.first_at >= policy.window or (
            count.locked_until is not None and count.locked_until <= now):
        count = Count(0, now)
    failures = count.failures + 1
    locked = now + policy.lockout if failures >= limit else None
    return Count(failures, count.first_at, locked)
