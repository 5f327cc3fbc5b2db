"""Phone numbers of CRM events: only numbers we may call, in E.164; letters, stray characters,
invalid numbers and number types a robot must not call are `invalid-phone`."""

from __future__ import annotations

import json
from typing import Any

import phonenumbers
import pytest
from pydantic import TypeAdapter, ValidationError

from campaigns.events import CallCompleted, EventRejected, Phone, parse_event

PHONE = TypeAdapter(Phone)
PhoneType = phonenumbers.PhoneNumberType


def e164(value: object, region: str = "RU") -> str:
    return PHONE.validate_python(value, context={"default_region": region})


def refusal(value: object, region: str = "RU") -> str:
    """The message of the single `invalid_phone` error `value` gets."""
    with pytest.raises(ValidationError) as caught:
        e164(value, region)
    [error] = caught.value.errors()
    assert error["type"] == "invalid_phone"
    return error["msg"]


def example(region: str, number_type: int) -> str:
    """phonenumbers' own example of a number type, written as a person would."""
    number = phonenumbers.example_number_for_type(region, number_type)
    assert number is not None and phonenumbers.number_type(number) == number_type
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@pytest.mark.parametrize("text", [
    "8 (999) 123-45-67",
    "+7 999 123 45 67",
    "+7 (999) 123-45-67",
    "89991234567",
    "+79991234567",
    "8.999.123.45.67",
    " +7 999 123 45 67 ",
])
def test_a_russian_mobile_in_any_usual_format_is_e164(text: str) -> None:
    assert e164(text) == "+79991234567"


@pytest.mark.parametrize("text", ["8 (495) 123-45-67", "+7 495 123 45 67", "4951234567"])
def test_a_russian_landline_is_e164(text: str) -> None:
    assert e164(text) == "+74951234567"


def test_the_default_region_applies_only_without_a_country_code() -> None:
    assert e164("020 7946 0018", "GB") == "+442079460018"
    assert e164("+7 999 123 45 67", "GB") == "+79991234567"


@pytest.mark.parametrize("text", [
    "+7 (999) abc-de-fg",
    "+7 (999) CALL-NOW",
    "+7 999 ПОЗ-ВОНИ",  # Cyrillic
    "+7 999 123 45 6\u0431",  # one Cyrillic letter, be
    "+7 999 123 45 6\u03b1",  # Greek alpha
    "8-800-ЦВЕТЫ-1",
    "+7 999 123 45 67 ext 5",
    "+7 999 123 45 67 x5",
    "+7 999 123 45 67;ext=5",
    "+7 999 一二三 45 67",  # CJK numerals are letters
])
def test_letters_of_any_script_are_refused_not_dialed(text: str) -> None:
    assert "letters" in refusal(text)


def test_a_vanity_number_is_refused_though_phonenumbers_would_dial_it() -> None:
    vanity = "1-800-FLOWERS"
    assert phonenumbers.is_valid_number(phonenumbers.parse(vanity, "US"))  # the old hole
    assert "letters" in refusal(vanity, "US")


def in_digits(text: str, zero: str) -> str:
    """`text` with its ASCII digits written in the script whose zero is `zero`."""
    return text.translate({ord("0") + n: ord(zero) + n for n in range(10)})


@pytest.mark.parametrize("text", [
    "+7 999 123 45 67;5",
    "+7 999 123 45 67 #5",
    "+7 999 123 45 67,5",
    "+7/999/123/45/67",
    "+7_999_123_45_67",
    "+7\t999 123 45 67",
    "+7\u00a0999 123 45 67",  # no-break space
    in_digits("+7 999 123 45 67", "\uff10"),  # fullwidth
    in_digits("+7 999 123 45 67", "\u0660"),  # Arabic-Indic
    in_digits("+7 999 123 45 67", "\u0966"),  # Devanagari
    "+7 999 123 45 67\n",
])
def test_only_ascii_digits_spaces_and_plus_dash_parens_dot_are_allowed(text: str) -> None:
    assert refusal(text) == "may contain only digits, spaces and + - ( ) ."


@pytest.mark.parametrize("text", ["12345", "+7 999", "8 999 123 45", "+7 999 123 45 678 9"])
def test_too_short_or_too_long_is_not_a_valid_number(text: str) -> None:
    assert refusal(text) == "is not a valid phone number"


@pytest.mark.parametrize("text", [" ", "+", "()", "-.-", "+7"])
def test_punctuation_alone_is_not_a_phone_number(text: str) -> None:
    assert refusal(text) in {"is not a phone number", "is not a valid phone number"}


@pytest.mark.parametrize(("value", "message"), [
    ("", "must be 1 to 64 characters long"),
    ("1" * 65, "must be 1 to 64 characters long"),
    (79991234567, "must be a string"),
    (None, "must be a string"),
])
def test_the_wrong_type_or_length_is_a_phone_error_too(value: object, message: str) -> None:
    assert refusal(value) == message


@pytest.mark.parametrize(("region", "number_type", "kind"), [
    ("RU", PhoneType.PREMIUM_RATE, "premium rate"),
    ("GB", PhoneType.PREMIUM_RATE, "premium rate"),
    ("DE", PhoneType.SHARED_COST, "shared cost"),
    ("GB", PhoneType.PAGER, "pager"),
    ("DE", PhoneType.VOICEMAIL, "voicemail"),
])
def test_numbers_a_robot_must_not_call_are_refused(
    region: str, number_type: int, kind: str
) -> None:
    message = refusal(example(region, number_type))
    assert message == f"is a {kind} number, which ringback does not call"


@pytest.mark.parametrize(("region", "number_type"), [
    ("RU", PhoneType.FIXED_LINE),
    ("RU", PhoneType.MOBILE),
    ("RU", PhoneType.TOLL_FREE),
    ("RU", PhoneType.PERSONAL_NUMBER),
    ("US", PhoneType.FIXED_LINE_OR_MOBILE),
    ("GB", PhoneType.VOIP),
    ("GB", PhoneType.UAN),
])
def test_callable_number_types_are_accepted(region: str, number_type: int) -> None:
    text = example(region, number_type)
    expected = phonenumbers.format_number(
        phonenumbers.parse(text), phonenumbers.PhoneNumberFormat.E164
    )
    assert e164(text) == expected


MISSING = object()


def call_completed(**data: Any) -> bytes:
    """A `call.completed` event; a field given as MISSING is left out."""
    fields = {"call_id": "call-1", "client_id": "client-1", "phone": "+7 999 123 45 67",
              "ended_at": "2025-03-03T12:04:30Z", "duration_s": 95, **data}
    fields = {name: value for name, value in fields.items() if value is not MISSING}
    return json.dumps({"id": "evt-1", "type": "call.completed",
                       "occurred_at": "2025-03-03T12:05:00Z", "data": fields}).encode()


def opted_out(**data: Any) -> bytes:
    return json.dumps({"id": "evt-2", "type": "client.opted_out",
                       "occurred_at": "2025-03-03T12:05:00Z", "data": data}).encode()


def rejection(body: bytes) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        parse_event(body, "RU")
    return caught.value


@pytest.mark.parametrize("body", [
    call_completed(phone="+7 (999) CALL-NOW"),
    call_completed(phone="12345"),
    call_completed(phone=79991234567),
    opted_out(phone="+7 (999) abc-de-fg"),
    opted_out(phone="+7 809 123 45 67", client_id="client-1"),  # premium rate
])
def test_an_event_with_a_bad_phone_is_invalid_phone_naming_the_field(body: bytes) -> None:
    error = rejection(body)
    assert error.code == "invalid-phone"
    assert error.message.startswith("data.phone: ")


def test_a_bad_phone_beside_other_bad_fields_is_still_invalid_phone() -> None:
    error = rejection(call_completed(phone="+7 (999) CALL-NOW", duration_s=-1))
    assert error.code == "invalid-phone"
    assert "data.phone: must not contain letters" in error.message
    assert "data.duration_s: " in error.message


@pytest.mark.parametrize("body", [
    call_completed(duration_s=-1),
    call_completed(phone=MISSING),
    opted_out(),
])
def test_other_rejections_keep_invalid_event(body: bytes) -> None:
    assert rejection(body).code == "invalid-event"


def test_a_good_phone_is_stored_as_e164() -> None:
    event = parse_event(call_completed(phone="8 (999) 123-45-67"), "RU")
    assert isinstance(event, CallCompleted)
    assert event.data.phone == "+79991234567"
