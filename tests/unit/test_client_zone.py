"""The client's time zone from the event, else from the number, else the default: real numbers
through `phonenumbers`' own zone data."""

import phonenumbers
import pytest
from phonenumbers import timezone as number_zones

from campaigns.client_zone import ClientZone, client_zone

DEFAULT = "Europe/Moscow"
VLADIVOSTOK_LANDLINE = "+74232400000"  # +7 423: Primorsky Krai
MOSCOW_LANDLINE = "+74951234567"  # +7 495
RUSSIAN_MOBILE = "+79991234567"  # mobile codes are not tied to a region
WASHINGTON = "+12025550123"  # +1 202: Washington, D.C., one zone
FREEPHONE = "+80012345678"  # international freephone: no place at all


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        (VLADIVOSTOK_LANDLINE, ClientZone("Asia/Vladivostok", "number")),
        (MOSCOW_LANDLINE, ClientZone("Europe/Moscow", "number")),
        (WASHINGTON, ClientZone("America/New_York", "number")),
        (FREEPHONE, ClientZone(DEFAULT, "default (number has no zone)")),
    ],
)
def test_without_an_event_zone_the_number_decides_when_it_names_one_zone(
    phone: str, expected: ClientZone
) -> None:
    assert client_zone(None, phone, DEFAULT) == expected


def test_the_events_zone_wins_over_the_number() -> None:
    assert client_zone("Europe/Moscow", VLADIVOSTOK_LANDLINE, "UTC") == ClientZone(
        "Europe/Moscow", "event"
    )


def test_a_mobile_number_of_many_zones_gets_the_default_and_says_why() -> None:
    zones = number_zones.time_zones_for_number(phonenumbers.parse(RUSSIAN_MOBILE))
    assert {"Europe/Moscow", "Asia/Vladivostok"} <= set(zones)  # Moscow to Kamchatka
    assert client_zone(None, RUSSIAN_MOBILE, DEFAULT) == ClientZone(
        DEFAULT, f"default (number ambiguous: {len(zones)} zones)"
    )


def test_the_default_is_whatever_is_configured() -> None:
    assert client_zone(None, RUSSIAN_MOBILE, "Asia/Yekaterinburg").name == "Asia/Yekaterinburg"
    assert client_zone(None, FREEPHONE, "UTC").name == "UTC"
