"""The CRM's inbound events: the envelope `{"id", "type", "occurred_at", "data"}` and the data of
each type we act on, validated strictly (JSON types as sent, times with an offset, phone numbers
normalised to E.164). Types we do not act on parse as `UnknownEvent` and are acknowledged.
"""

import json
import re
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import phonenumbers
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_ID_LENGTH = 200
MAX_PHONE_INPUT_LENGTH = 64
PHONE_ERROR_TYPE = "invalid_phone"
# Numbers a robot may call: people's lines and free or ordinary-rate service numbers. Premium
# rate and shared cost would charge the company (or the client) extra; pagers and voicemail
# cannot take a call; UNKNOWN is what phonenumbers cannot place.
CALLABLE_NUMBER_TYPES = frozenset({
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.UAN,
})
# ASCII digits only: str.isdigit and \d would let other scripts' digits through.
_PHONE_CHARACTERS = re.compile(r"[0-9 +\-().]+")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_ERRORS_SHOWN = 5


class EventRejected(Exception):
    """A body that is not a valid CRM event; `code` is a stable id for the API."""

    def __init__(
        self, code: Literal["malformed-json", "invalid-event", "invalid-phone"], message: str
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _iso_datetime_string(value: object) -> object:
    # Pydantic also takes Unix timestamps (even as strings); the contract says ISO 8601.
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2025-01-31T10:00:00Z")
    return value


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _iana_zone(value: str) -> str:
    if value not in _zone_names():
        raise ValueError("must be an IANA time zone name, e.g. Europe/Moscow")
    return value


def _e164(value: object, info: ValidationInfo) -> str:
    """The E.164 form of a number we may call. Every refusal is an `invalid_phone` error, so
    that `parse_event` tells a bad phone number from the other bad fields by its type."""
    region = (info.context or {}).get("default_region")
    if not isinstance(region, str):
        raise RuntimeError("parse events with a default_region in the validation context")
    number = _valid_number(_phone_text(value), region)
    number_type = phonenumbers.number_type(number)
    if number_type not in CALLABLE_NUMBER_TYPES:
        kind = phonenumbers.PhoneNumberType.to_string(number_type).lower().replace("_", " ")
        raise _phone_error(f"is a {kind} number, which ringback does not call")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone_text(value: object) -> str:
    # phonenumbers turns letters into keypad digits (8-800-FLOWERS): a typo or a stray word
    # would dial a stranger, so letters of any script are refused before it sees them.
    if not isinstance(value, str):
        raise _phone_error("must be a string")
    if not 1 <= len(value) <= MAX_PHONE_INPUT_LENGTH:
        raise _phone_error(f"must be 1 to {MAX_PHONE_INPUT_LENGTH} characters long")
    if any(char.isalpha() for char in value):
        raise _phone_error("must not contain letters (no vanity numbers, no extensions)")
    if not _PHONE_CHARACTERS.fullmatch(value):
        raise _phone_error("may contain only digits, spaces and + - ( ) .")
    return value


def _valid_number(text: str, region: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise _phone_error("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise _phone_error("is not a valid phone number")
    return number


def _phone_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(PHONE_ERROR_TYPE, message)


def _matching(pattern: str, expected: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {expected}")
        return value

    return AfterValidator(check)


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    _matching(r"\S(?:[^\x00-\x1f\x7f]*\S)?", "without control characters or edge spaces"),
]
EventType = Annotated[
    str,
    StringConstraints(max_length=100),
    _matching(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+", "a dotted lowercase name like call.completed"),
]
# Lax inside (a before-validator hands it a Python str), strict outside: only ISO strings.
IsoDateTime = Annotated[AwareDatetime, Strict(False), BeforeValidator(_iso_datetime_string)]
# A plain validator: a wrong JSON type or length is a phone error too, not a generic one.
Phone = Annotated[str, PlainValidator(_e164, json_schema_input_type=str)]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iana_zone)]
Locale = Annotated[
    str, _matching(r"[a-z]{2,3}(?:-[A-Z]{2})?", "a language tag like ru, en or en-US")
]


class _Model(BaseModel):
    # Unknown fields are ignored: a CRM adding a field must not break the integration.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class CallCompletedData(_Model):
    call_id: Id
    client_id: Id
    phone: Phone
    ended_at: IsoDateTime
    duration_s: float = Field(ge=0, allow_inf_nan=False)
    agent_id: Id | None = None
    queue: Id | None = None
    timezone: TimeZoneName | None = None
    locale: Locale | None = None


class ClientOptedOutData(_Model):
    phone: Phone | None = None
    client_id: Id | None = None

    @model_validator(mode="after")
    def _phone_or_client(self) -> "ClientOptedOutData":
        if self.phone is None and self.client_id is None:
            raise ValueError("give phone or client_id (or both)")
        return self


class _Envelope(_Model):
    id: Id
    occurred_at: IsoDateTime


class CallCompleted(_Envelope):
    type: Literal["call.completed"]
    data: CallCompletedData


class ClientOptedOut(_Envelope):
    type: Literal["client.opted_out"]
    data: ClientOptedOutData


class UnknownEvent(_Envelope):
    """An event type we do not act on: acknowledged, recorded as seen, ignored."""

    type: EventType
    data: dict[str, Any]


Envelope = CallCompleted | ClientOptedOut | UnknownEvent

_KNOWN: dict[str, type[CallCompleted | ClientOptedOut]] = {
    "call.completed": CallCompleted,
    "client.opted_out": ClientOptedOut,
}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    more = error.error_count() - _ERRORS_SHOWN
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_event(body: bytes, default_region: str) -> Envelope:
    """Parse and validate one CRM event; raise `EventRejected` for anything else."""
    try:
        raw = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise EventRejected("malformed-json", f"the body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise EventRejected("invalid-event", "the body must be a JSON object")
    event_type = raw.get("type")
    model = _KNOWN.get(event_type, UnknownEvent) if isinstance(event_type, str) else UnknownEvent
    try:
        return model.model_validate_json(body, context={"default_region": default_region})
    except ValidationError as exc:
        raise EventRejected(_rejection_code(exc), _describe(exc)) from None


def _rejection_code(error: ValidationError) -> Literal["invalid-event", "invalid-phone"]:
    """`invalid-phone` when any phone field failed (the CRM must fix a contact, not its
    integration), `invalid-event` otherwise."""
    phone_failed = any(item["type"] == PHONE_ERROR_TYPE for item in error.errors())
    return "invalid-phone" if phone_failed else "invalid-event"
