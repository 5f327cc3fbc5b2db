"""The client's own time zone, for the calling window: the event's, else the number's, else the
configured default.

A CRM often leaves `timezone` out. The number then tells where the client lives when it belongs
to one zone (`phonenumbers` maps a Vladivostok landline, +7 423 ..., to Asia/Vladivostok).
A number of a whole country (a Russian mobile maps to 16 zones, from Europe/Moscow to
Asia/Kamchatka) says nothing: then the default is used, and `source` says why, for the job's
context. Pure logic: no I/O, no clock.
"""

from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

import phonenumbers
from phonenumbers import timezone as number_zones

FROM_EVENT = "event"
FROM_NUMBER = "number"


@dataclass(frozen=True)
class ClientZone:
    """`name` is an IANA zone; `source` is `"event"`, `"number"`, or `"default (<why>)"`:
    `"default (number ambiguous: N zones)"` or `"default (number has no zone)"`."""

    name: str
    source: str


def client_zone(event_zone: str | None, phone: str, default: str) -> ClientZone:
    """The zone to call `phone` (E.164) in: `event_zone` when the event gave one, else the
    number's only zone, else `default`."""
    if event_zone:
        return ClientZone(event_zone, FROM_EVENT)
    zones = sorted(
        set(number_zones.time_zones_for_number(phonenumbers.parse(phone))) & _known_zones()
    )
    if len(zones) == 1:
        return ClientZone(zones[0], FROM_NUMBER)
    if zones:
        return ClientZone(default, f"default (number ambiguous: {len(zones)} zones)")
    return ClientZone(default, "default (number has no zone)")  # e.g. +800, or 'Etc/Unknown'


@cache
def _known_zones() -> frozenset[str]:
    """The zones this host's tz database has: `phonenumbers` answers `Etc/Unknown` for numbers
    of no place, and a newer `phonenumbers` may name a zone an older tz database lacks."""
    return frozenset(available_timezones())
