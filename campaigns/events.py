"""The CRM's inbound events: the envelope `{"id", "type", "occurred_at", "data"}` and the data of
each type we act on, validated strictly (JSON types as sent, times with an offset in the years
`FIRST_YEAR`..`LAST_YEAR`, region time zones, phone numbers normalised to E.164, JSON nested at most
`MAX_NESTING` deep). Types we do not act on parse as `UnknownEvent` and are acknowledged.
`Envelope` is also the contract's JSON schema (`envelope_json_schema`).
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

MAX_ID_LENGTH = 200
# Arrays and objects inside one another: an event needs 3 levels; deeper bodies are refused
# before they are parsed (Python's JSON parser recurses, ~1000 levels raise RecursionError).
MAX_NESTING = 32
# The years a time may be written in. Outside this century a time is a clock or mapping bug of
# the CRM, and far years overflow the arithmetic on them (a survey 30 minutes after 9999-12-31).
FIRST_YEAR = 2000
LAST_YEAR = 2099
_YEARS_PATTERN = "^20[0-9]{2}-"  # FIRST_YEAR to LAST_YEAR, for the JSON schema
MAX_PHONE_INPUT_LENGTH = 64
MAX_NOTE_LENGTH = 1000  # a client's note on a callback request
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
# A JSON string (skipped whole: brackets inside it do not nest) or a bracket. An unterminated
# string runs to the end, so that each character is scanned once, whatever the body.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
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


def _in_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:  # the year as written, as the schema says
        raise ValueError(f"must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return value


@cache
def _zone_names() -> frozenset[str]:
    """The tz database's zones of a region ("Area/Location", links like US/Eastern too) and
    UTC. Not the one-word names: the host's own `localtime`, the placeholder `Factory`, and
    legacy aliases (EST5EDT, GB, W-SU) that say nothing of where the client is."""
    return frozenset(name for name in available_timezones() if "/" in name) | {"UTC"}


def _iana_zone(value: str) -> str:
    if value not in _zone_names():
        raise ValueError("must be an IANA time zone of a region, e.g. Europe/Moscow, or UTC")
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


@dataclass(frozen=True)
class _Matching:
    """A string that must match `pattern` whole: refused with "must be <expected>", and the
    pattern shown in the JSON schema."""

    pattern: str
    expected: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": f"^{self.pattern}$"}

    def _check(self, value: str) -> str:
        if not re.fullmatch(self.pattern, value):
            raise ValueError(f"must be {self.expected}")
        return value


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    _Matching(r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?",
              "without control characters or edge spaces"),
]
EventType = Annotated[
    str,
    StringConstraints(max_length=100),
    _Matching(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+", "a dotted lowercase name like call.completed"),
]
BoundedDateTime = Annotated[
    AwareDatetime, AfterValidator(_in_range), Field(json_schema_extra={"pattern": _YEARS_PATTERN})
]
# Lax inside (a before-validator hands it a Python str), strict outside: only ISO strings.
# Also for the times the API takes in query parameters.
IsoDateTime = Annotated[
    BoundedDateTime,
    Strict(False),
    BeforeValidator(_iso_datetime_string),
    Field(description=f"ISO 8601 with an offset, years {FIRST_YEAR} to {LAST_YEAR}"),
]
# A plain validator: a wrong JSON type or length is a phone error too, not a generic one.
Phone = Annotated[
    str,
    PlainValidator(_e164, json_schema_input_type=str),
    Field(description="a callable number, E.164 or national (default region)",
          json_schema_extra={"minLength": 1, "maxLength": MAX_PHONE_INPUT_LENGTH,
                             "pattern": f"^{_PHONE_CHARACTERS.pattern}$"}),
]
TimeZoneName = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_iana_zone),
    Field(description="an IANA time zone of a region, e.g. Europe/Moscow, or UTC"),
]
Locale = Annotated[
    str, _Matching(r"[a-z]{2,3}(?:-[A-Z]{2})?", "a language tag like ru, en or en-US")
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


Amount = Annotated[
    Decimal,
    Strict(False),  # a JSON number or a decimal string: "350.50"
    Field(allow_inf_nan=False, max_digits=18, decimal_places=4,
          description="an amount of money, a JSON number or a decimal string"),
]
Currency = Annotated[str, _Matching(r"[A-Z]{3}", "an ISO 4217 code like RUB or USD")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class _WarningData(_Model):
    """What both warnings carry: the client, and optionally who the client's manager is."""

    client_id: Id
    phone: Phone
    timezone: TimeZoneName | None = None
    locale: Locale | None = None
    name: Name | None = None  # how the robot greets the client
    # ringback's extension: the account manager, for key 2 (put through, or a callback task)
    manager_id: Id | None = None
    manager_phone: Phone | None = None


class BalanceLowData(_WarningData):
    balance: Amount
    currency: Currency
    days_left: int | None = Field(None, ge=0, le=3650)


class CampaignStoppingData(_WarningData):
    campaign_id: Id
    campaign_name: Name
    stops_at: IsoDateTime
    reason: Name | None = None


class BalanceToppedUpData(_Model):
    client_id: Id
    amount: Amount | None = None


class ClientOptedOutData(_Model):
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("phone", "client_id")
    ]})

    phone: Phone | None = None
    client_id: Id | None = None

    @model_validator(mode="after")
    def _phone_or_client(self) -> "ClientOptedOutData":
        if self.phone is None and self.client_id is None:
            raise ValueError("give phone or client_id (or both)")
        return self


Note = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NOTE_LENGTH,
                                        strip_whitespace=True)]


class CallMissedData(_Model):
    """A call to support nobody answered. Without `client_id` the phone number is the client's
    key (ringback's client id for the task is then the E.164 number)."""

    call_id: Id
    phone: Phone
    at: IsoDateTime
    client_id: Id | None = None
    timezone: TimeZoneName | None = None
    agent_id: Id | None = None
    queue: Id | None = None


class CallbackRequestedData(_Model):
    """A client asked to be called back, at `at` or as soon as support can."""

    client_id: Id
    phone: Phone
    at: IsoDateTime | None = None
    note: Note | None = None
    timezone: TimeZoneName | None = None


class _Envelope(_Model):
    id: Id
    occurred_at: IsoDateTime


class CallCompleted(_Envelope):
    type: Literal["call.completed"]
    data: CallCompletedData


class ClientOptedOut(_Envelope):
    type: Literal["client.opted_out"]
    data: ClientOptedOutData


class BalanceLow(_Envelope):
    type: Literal["balance.low"]
    data: BalanceLowData


class CampaignStopping(_Envelope):
    type: Literal["campaign.stopping"]
    data: CampaignStoppingData


class BalanceToppedUp(_Envelope):
    type: Literal["balance.topped_up"]
    data: BalanceToppedUpData


class CallMissed(_Envelope):
    type: Literal["call.missed"]
    data: CallMissedData


class CallbackRequested(_Envelope):
    type: Literal["callback.requested"]
    data: CallbackRequestedData


def _not_a_known_type(schema: dict[str, Any]) -> None:
    schema["properties"]["type"]["not"] = {"enum": sorted(_KNOWN)}


class UnknownEvent(_Envelope):
    """An event type we do not act on: acknowledged, recorded as seen, ignored."""

    model_config = ConfigDict(json_schema_extra=_not_a_known_type)

    type: EventType
    data: dict[str, Any]


KnownEvent = (
    CallCompleted | ClientOptedOut | BalanceLow | CampaignStopping | BalanceToppedUp
    | CallMissed | CallbackRequested
)
Envelope = KnownEvent | UnknownEvent

_KNOWN: dict[str, type[KnownEvent]] = {
    "call.completed": CallCompleted,
    "client.opted_out": ClientOptedOut,
    "balance.low": BalanceLow,
    "campaign.stopping": CampaignStopping,
    "balance.topped_up": BalanceToppedUp,
    "call.missed": CallMissed,
    "callback.requested": CallbackRequested,
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


def envelope_json_schema() -> dict[str, Any]:
    """The JSON schema of an event as the CRM sends it; the models it uses are in `$defs`."""
    return TypeAdapter(Envelope).json_schema()


def _nesting(text: str) -> int:
    """How deep arrays and objects nest in the JSON `text`, counted up to MAX_NESTING + 1."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        if match[0] in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                break
        elif match[0] in ("]", "}"):
            depth -= 1
    return depth


def parse_event(body: bytes, default_region: str) -> Envelope:
    """Parse and validate one CRM event; raise `EventRejected` for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventRejected("malformed-json", f"the body is not JSON: {exc}") from None
    if _nesting(text) > MAX_NESTING:
        raise EventRejected(
            "invalid-event", f"body: arrays and objects nest deeper than {MAX_NESTING} levels"
        )
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
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
