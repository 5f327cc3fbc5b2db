"""The settings as every command sees them, checked as a whole: `ringback config check`.

`Settings()` (infra) checks what the shared plumbing can judge. The rest is judged here by the
parsers that will use the values, so there is one parser per syntax and infra stays a leaf:
working and calling hours (`campaigns.calendar`), the holiday country and the extra days (the
business calendar), the survey's default locale and text overrides (`ivr.survey`), the warning
calls' retry delays (`campaigns.purpose`), text overrides (`ivr.catalog`) and the manager's phone
(`campaigns.events`), the speech voices (`audio.speech`).

Every problem is found, not only the first: when `Settings()` refuses some values, the others
are still checked, with stand-ins (the defaults, a fresh secret) in place of the refused ones.
"""

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from api.call_command import speech_from
from campaigns.calendar import BusinessCalendar, parse_weekly_hours
from campaigns.events import Phone
from campaigns.purpose import parse_retry_delays
from infra.errors import InvalidSettings
from infra.settings import SECRET_PREFIX, SECRET_SETTINGS, Settings
from ivr.catalog import FlowCatalog, FlowOptions, default_entries
from ivr.errors import FlowError
from ivr.survey import survey_flow, survey_texts
from ivr.warning import WarningReason
from telephony.inbound_policy import REFUSALS
from telephony.sip.ua import call_capacity

MASK = "***"
UNSET = "(unset)"
URL_SETTINGS = frozenset({"database_url", "crm_url", "crm_check_url", "supervisor_url"})
"""Shown without their password and query string: some CRMs put a secret in the URL."""

Check = Callable[[Settings], object]

PHONE = TypeAdapter(Phone)
# Every shape a warning call can take, for its flow in the catalog: with a name or not, with the
# days left or not (a balance); always with a manager's phone, so the transfer's texts are in.
_WARNING_CALLS = [
    (reason.flow_name, {**values, **named, "manager_phone": "+74950000000"})
    for reason, values in (
        (WarningReason.BALANCE, {"balance": "1", "currency": "RUB"}),
        (WarningReason.BALANCE, {"balance": "1", "currency": "RUB", "days_left": "1"}),
        (WarningReason.CAMPAIGN, {"campaign": "campaign", "stop_date": "2026-01-01"}),
    )
    for named in ({}, {"name": "name"})
]


@dataclass(frozen=True)
class Problem:
    settings: tuple[str, ...]  # field names; empty when no one setting is to blame
    message: str

    def __str__(self) -> str:
        names = ", ".join(env_name(name) for name in self.settings)
        return f"{names}: {self.message}" if names else self.message


@dataclass(frozen=True)
class Row:
    name: str
    value: str
    source: str  # environment, .env or default


@dataclass(frozen=True)
class Report:
    settings: Settings | None  # with stand-ins for refused values; None if even they failed
    problems: list[Problem] = field(default_factory=list)
    stand_ins: frozenset[str] = frozenset()  # the refused values and those that clash with them

    @property
    def refused(self) -> frozenset[str]:
        return frozenset(name for problem in self.problems for name in problem.settings)


def env_name(setting: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{setting}".upper()


def load_settings() -> Settings:
    """The settings every command runs with; `InvalidSettings` names every problem."""
    report = check_settings()
    if report.problems or report.settings is None:
        raise InvalidSettings([str(problem) for problem in report.problems])
    return report.settings


def check_settings() -> Report:
    try:
        settings: Settings | None = Settings()
        problems: list[Problem] = []
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors(include_url=False, include_input=False)]
        stand_ins = {name for problem in problems for name in problem.settings}
        settings = _with_stand_ins(stand_ins)
    except SettingsError as exc:  # e.g. an unreadable .env
        return Report(None, [Problem((), str(exc))])
    else:
        stand_ins = set()
    if settings is not None:
        problems += domain_problems(settings)
    return Report(settings, problems, frozenset(stand_ins))


def domain_problems(settings: Settings) -> list[Problem]:
    """What only the domain can judge, each checked by the code that will use it."""
    checks: list[tuple[tuple[str, ...], Check]] = [
        (("calendar_hours",), lambda s: parse_weekly_hours(s.calendar_hours)),
        (("calling_window_hours",), lambda s: parse_weekly_hours(s.calling_window_hours)),
        (("calendar_country",),
         lambda s: BusinessCalendar.from_settings(s.calendar_timezone, country=s.calendar_country)),
        (("calendar_extra_holidays", "calendar_extra_working_days"), _extra_days),
        (("default_locale",), _default_locale),
        (("survey_texts",), _survey_overrides),
        (("warning_retry_delays",), lambda s: parse_retry_delays(s.warning_retry_delays)),
        (("warning_calling_hours",), _warning_calling_hours),
        (("warning_texts",), _warning_overrides),
        (("manager_phone",), _manager_phone),
        (("company_name_spoken",), _company_spoken),
        (("inbound_status",), _inbound_status),
        (("channel_limit", "rtp_port_min", "rtp_port_max"), _room_for_channels),
        (("tts_voices", "tts_rate_wpm"), speech_from),
    ]
    problems = []
    for names, check in checks:
        try:
            check(settings)
        except (ValueError, FlowError) as exc:
            problems.append(Problem(names, str(exc)))
    return problems


def _extra_days(settings: Settings) -> BusinessCalendar:
    return BusinessCalendar.from_settings(
        settings.calendar_timezone, country=None,
        extra_holidays=settings.calendar_extra_holidays,
        extra_working_days=settings.calendar_extra_working_days,
    )


def _default_locale(settings: Settings) -> str:
    flow = survey_flow()
    try:
        return flow.resolve_locale(None, settings.default_locale)
    except FlowError:
        raise ValueError(f"the survey has no texts for {settings.default_locale!r}: use one of "
                         f"{', '.join(sorted(flow.locales))}") from None


def _room_for_channels(settings: Settings) -> None:
    """Every channel needs an RTP port (and a descriptor): a call beyond the room fails at once
    and burns a client's attempt."""
    room = call_capacity((settings.rtp_port_min, settings.rtp_port_max))
    if settings.channel_limit > room:
        raise ValueError(
            f"{settings.channel_limit} channels need {settings.channel_limit} even RTP ports and "
            f"descriptors; RTP ports {settings.rtp_port_min}-{settings.rtp_port_max} and "
            f"`ulimit -n` leave room for {room} calls: widen the range, raise the limit, or "
            f"lower RINGBACK_CHANNEL_LIMIT")


def _inbound_status(settings: Settings) -> None:
    if settings.inbound_status not in REFUSALS:
        allowed = ", ".join(map(str, sorted(REFUSALS)))
        raise ValueError(f"inbound calls can be refused with {allowed}, "
                         f"not {settings.inbound_status}")


def _company_spoken(settings: Settings) -> dict[str, str]:
    locale = min(survey_flow().locales)
    return survey_texts(locale, company=settings.company_name, default_locale=locale,
                        company_spoken=settings.company_name_spoken)


def _survey_overrides(settings: Settings) -> dict[str, str]:
    """Every override is checked whichever locale is asked for; ask for one the survey has."""
    locale = min(survey_flow().locales)
    return survey_texts(locale, settings.survey_texts, company=settings.company_name,
                        default_locale=locale)


def _warning_calling_hours(settings: Settings) -> object:
    """Parsed like `calling_window_hours` when set (unset or empty: the calling window's)."""
    if not settings.warning_calling_hours:
        return None
    return parse_weekly_hours(settings.warning_calling_hours)


def _warning_overrides(settings: Settings) -> None:
    """Every override must be for a warning prompt, and work in every warning call it may be
    spoken in: a placeholder is filled only where the call has its value (`{balance}` in the
    balance's sentences, `{name}` in the greeting by name, `{company}` everywhere)."""
    warnings = [entry for entry in default_entries()
                if entry.name in {reason.flow_name for reason in WarningReason}]
    locale = min(warnings[0].locales)  # every locale's overrides are checked, whichever is asked
    catalog = FlowCatalog(FlowOptions(company=settings.company_name, default_locale=locale,
                                      overrides=settings.warning_texts), warnings)
    unknown = sorted({prompt for texts in settings.warning_texts.values() for prompt in texts}
                     - catalog.prompt_ids)
    if unknown:
        raise ValueError(f"override for unknown prompts {unknown}: the warnings' prompts are "
                         f"{', '.join(sorted(catalog.prompt_ids))}")
    for name, values in _WARNING_CALLS:
        catalog.session(name, locale, values)


def _manager_phone(settings: Settings) -> None:
    """A number ringback may call (as the CRM's phone numbers are checked), written in E.164:
    it is dialled as written."""
    if settings.manager_phone is None:
        return
    try:
        e164 = PHONE.validate_python(settings.manager_phone,
                                     context={"default_region": settings.default_region})
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"]) from None
    if e164 != settings.manager_phone:
        raise ValueError("write it in E.164: + country code and number, without spaces or "
                         "dashes (like +74951234567)")


def _problem(error: ErrorDetails) -> Problem:
    name, *inner = error["loc"] or ("",)
    message = error["msg"].removeprefix("Value error, ")
    if inner:
        message = "at " + "".join(f"[{json.dumps(key)}]" for key in inner) + ": " + message
    return Problem((str(name),) if name else (), message)


def _with_stand_ins(refused: set[str]) -> Settings | None:
    """The settings with a stand-in for each refused value, to check the others further;
    `refused` grows by the values that clash with a stand-in."""
    while True:
        try:
            return Settings(**{name: _stand_in(name) for name in refused})
        except ValidationError as exc:  # a stand-in clashed with another value (RTP ports)
            more = {str(error["loc"][0]) for error in exc.errors() if error["loc"]} - refused
            if not more:
                return None
            refused |= more


def _stand_in(name: str) -> Any:
    if name in SECRET_SETTINGS and Settings.model_fields[name].annotation is SecretStr:
        return SecretStr(SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode())
    return Settings.model_fields[name].get_default(call_default_factory=True)


def rows(report: Report) -> list[Row]:
    """Every setting: its effective value (secrets masked) and where it came from."""
    dotenv, environment = _raw(DotEnvSettingsSource(Settings)), _raw(EnvSettingsSource(Settings))
    configured = {**dotenv, **environment}
    return [
        Row(env_name(name), _shown(report, name, configured),
            "environment" if name in environment else ".env" if name in dotenv else "default")
        for name in Settings.model_fields
    ]


def _shown(report: Report, name: str, configured: dict[str, Any]) -> str:
    if report.settings is not None and name not in report.stand_ins | report.refused:
        return _masked(name, getattr(report.settings, name))
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    shown = _masked(name, configured.get(name, default))
    return f"{shown}  (refused)" if name in report.refused else shown


def _raw(source: EnvSettingsSource) -> dict[str, Any]:
    return {name: value for name, value in source().items() if name in Settings.model_fields}


def _masked(name: str, value: object) -> str:
    if value is None:
        return UNSET
    if name in SECRET_SETTINGS:
        return MASK
    if name in URL_SETTINGS:
        return mask_url(str(value))
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def mask_url(url: str) -> str:
    """`url` without its password, query string and fragment (`***` for the first two)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    masked = url.partition("#")[0]
    if parts.query:
        masked = f"{masked.partition('?')[0]}?{MASK}"
    if password is not None:
        user_info, _, host = parts.netloc.rpartition("@")
        masked = masked.replace(parts.netloc, f"{user_info.partition(':')[0]}:{MASK}@{host}", 1)
    return masked


def render(report: Report) -> str:
    """The report for people: one line per setting, then every problem."""
    table = rows(report)
    width = max(len(row.name) for row in table)
    lines = [f"# ringback {version('ringback')}: effective settings (value, source)"]
    lines += [f"{row.name.ljust(width)}  {row.value}  [{row.source}]" for row in table]
    if report.problems:
        lines.append(f"# {len(report.problems)} problem(s):")
        lines += [f"{problem}" for problem in report.problems]
    else:
        lines.append("# no problems found")
    return "\n".join(lines)
