"""The warning calls: a low balance, or an ad campaign about to stop.

The robot greets (by the client's name when known), says what is wrong in short sentences (the
amount with its currency, the campaign and its stop date, all in words), then offers a menu:
1 - send the invoice again, 2 - the account manager (put through when the call has a manager's
number, else a callback), 9 - no more calls. Each choice is confirmed in one sentence. Silence
or another key plays the menu once more, then goodbye.

Results: `INVOICE`, `MANAGER` (a callback wanted, or the transfer failed), `TRANSFERRED`,
`OPT_OUT`, else `NO_INPUT` / `INVALID` / `HUNG_UP` from the interpreter.

A call's values are plain strings, as stored with its job: `balance` (a decimal), `currency`
(ISO 4217), `days_left`, `campaign`, `stop_date` (ISO date, in the client's zone), `name`,
`manager_phone`; the numbers and the date are turned into words for the call's language here
(`ivr.spoken`), so the voice never reads digits.
"""

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from ivr.company import company_value
from ivr.errors import FlowError
from ivr.flow import Choice, Flow, Menu, Message, Step, Templates, Transfer
from ivr.results import FlowResult
from ivr.session import Session
from ivr.spoken import spoken_amount, spoken_date, spoken_number

HELLO = "warning.hello"
HELLO_NAMED = "warning.hello_named"
BALANCE = "warning.balance"
DAYS_LEFT = "warning.days_left"
CAMPAIGN = "warning.campaign"
MENU = "warning.menu"
SORRY = "warning.sorry"
INVOICE = "warning.invoice"
CONNECTING = "warning.connecting"
MANAGER_CALLBACK = "warning.manager_callback"
OPT_OUT = "warning.opt_out"
GOODBYE = "warning.goodbye"

MENU_REPEATS = 1  # the menu is heard at most twice
DEFAULT_NO_INPUT_TIMEOUT_S = 6.0


class WarningReason(StrEnum):
    BALANCE = "balance"
    CAMPAIGN = "campaign"

    @property
    def flow_name(self) -> str:
        return f"{self.value}_warning"


WARNING_TEMPLATES: Templates = {
    "en": {
        HELLO: "Hello! This is {company}.",
        HELLO_NAMED: "Hello, {name}! This is {company}.",
        BALANCE: "Your account balance is low. It is {balance}.",
        DAYS_LEFT: "Days left at this rate: {days_left}.",
        CAMPAIGN: "Your ad campaign {campaign} will stop on {stop_date}.",
        MENU: (
            "To get the invoice again, press 1. To talk to your account manager, press 2. "
            "To stop these calls, press 9."
        ),
        SORRY: "Sorry, I did not get that.",
        INVOICE: "We will send you the invoice again.",
        CONNECTING: "Connecting you to your account manager.",
        MANAGER_CALLBACK: "Your account manager will call you back.",
        OPT_OUT: "We will not call you again.",
        GOODBYE: "Thank you. Goodbye!",
    },
    "ru": {
        HELLO: "Здравствуйте! Это {company}.",
        HELLO_NAMED: "Здравствуйте, {name}! Это {company}.",
        BALANCE: "На вашем счёте заканчиваются деньги. Баланс: {balance}.",
        DAYS_LEFT: "Осталось дней: {days_left}.",
        CAMPAIGN: "Ваша рекламная кампания {campaign} остановится {stop_date}.",
        MENU: (
            "Чтобы получить счёт ещё раз, нажмите один. "
            "Чтобы поговорить с менеджером, нажмите два. "
            "Чтобы больше не получать такие звонки, нажмите девять."
        ),
        SORRY: "Извините, мы вас не поняли.",
        INVOICE: "Мы отправим вам счёт ещё раз.",
        CONNECTING: "Соединяю с вашим менеджером.",
        MANAGER_CALLBACK: "Ваш менеджер вам перезвонит.",
        OPT_OUT: "Мы больше не будем вам звонить.",
        GOODBYE: "Спасибо. До свидания!",
    },
}

WARNING_PROMPTS = frozenset(WARNING_TEMPLATES["en"])


def warning_flow(
    reason: WarningReason,
    *,
    named: bool = False,
    days_left: bool = False,
    transfer: bool = False,
    no_input_timeout_s: float = DEFAULT_NO_INPUT_TIMEOUT_S,
) -> Flow:
    """The flow for one call: with the greeting by name, the days left (balance) and the
    transfer to the manager only when the call has those values."""
    news: list[Step] = []
    if reason is WarningReason.BALANCE:
        news.append(Message("balance", BALANCE, next="days_left" if days_left else "menu"))
        if days_left:
            news.append(Message("days_left", DAYS_LEFT, next="menu"))
    else:
        news.append(Message("campaign", CAMPAIGN, next="menu"))
    manager: tuple[Step, ...] = (Message("manager_callback", MANAGER_CALLBACK, next="goodbye"),)
    if transfer:
        manager = (
            Message("connecting", CONNECTING, next="transfer"),
            Transfer("transfer", target="manager_phone", failed="manager_callback"),
            *manager,
        )
    steps: tuple[Step, ...] = (
        Message("hello", HELLO_NAMED if named else HELLO, next=news[0].id),
        *news,
        Menu(
            "menu", MENU,
            choices={
                "1": Choice(next="invoice", outcome=FlowResult.INVOICE),
                "2": Choice(next=manager[0].id, outcome=FlowResult.MANAGER),
                "9": Choice(next="opt_out", outcome=FlowResult.OPT_OUT),
            },
            no_input_timeout_s=no_input_timeout_s,
            max_repeats=MENU_REPEATS,
            exhausted="goodbye",
            invalid_prompt=SORRY,
            no_input_prompt=SORRY,
        ),
        Message("invoice", INVOICE, next="goodbye"),
        *manager,
        Message("opt_out", OPT_OUT, next="goodbye"),
        Message("goodbye", GOODBYE, next=None),
    )
    used = frozenset(prompt for step in steps for prompt in step.prompts)
    templates = {locale: {prompt: text for prompt, text in texts.items() if prompt in used}
                 for locale, texts in WARNING_TEMPLATES.items()}
    return Flow(name=reason.flow_name, start="hello", steps=steps, templates=templates)


def warning_session(
    reason: WarningReason,
    locale: str | None,
    values: Mapping[str, str],
    *,
    company: str,
    default_locale: str,
    overrides: Templates | None = None,
    company_spoken: Mapping[str, str] | None = None,
    no_input_timeout_s: float = DEFAULT_NO_INPUT_TIMEOUT_S,
) -> Session:
    """A session for one warning call, its values spoken in the call's language. Raises
    `FlowError` for a missing or malformed value and for bad overrides (see `Flow.texts`): one
    for a prompt no warning has; those for warning prompts this call does not speak (the
    transfer's, say, when there is no manager's number) are skipped."""
    given = {name: value for name, value in values.items() if value and value.strip()}
    flow = warning_flow(reason, named="name" in given,
                        days_left=reason is WarningReason.BALANCE and "days_left" in given,
                        transfer="manager_phone" in given, no_input_timeout_s=no_input_timeout_s)
    resolved = flow.resolve_locale(locale, default_locale)
    language = resolved.split("-", 1)[0]
    spoken = {"company": company_value(flow, resolved, company, company_spoken),
              **_spoken_values(reason, given, language)}
    overrides = overrides or {}
    unknown = sorted({prompt for texts in overrides.values() for prompt in texts}
                     - WARNING_PROMPTS)
    if unknown:  # a warning prompt this call does not speak is skipped (own_overrides)
        raise FlowError(f"flow {flow.name!r}: override for unknown prompts {unknown}")
    texts = flow.texts(resolved, overrides=flow.own_overrides(overrides), values=spoken)
    targets = {"manager_phone": given["manager_phone"]} if "manager_phone" in given else {}
    return Session(flow, resolved, texts, targets)


def _spoken_values(reason: WarningReason, given: Mapping[str, str], language: str
                   ) -> dict[str, str]:
    """The call's values as its language speaks them; FlowError for one that cannot be."""
    spoken = {"name": given["name"]} if "name" in given else {}
    try:
        if reason is WarningReason.BALANCE:
            spoken["balance"] = spoken_amount(_decimal(_required(given, "balance")),
                                              _required(given, "currency"), language)
            if "days_left" in given:
                spoken["days_left"] = spoken_number(_integer(given["days_left"]), language)
        else:
            spoken["campaign"] = _required(given, "campaign")
            spoken["stop_date"] = spoken_date(_date(_required(given, "stop_date")), language)
    except ValueError as exc:  # ivr.spoken's refusals (a currency code "rubles", 10**30)
        raise FlowError(f"warning call values: {exc}") from None
    return spoken


def _required(values: Mapping[str, str], name: str) -> str:
    if name not in values:
        raise FlowError(f"warning call without its {name!r}")
    return values[name]


def _decimal(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise FlowError(f"not an amount: {text!r}") from None
    if not amount.is_finite():
        raise FlowError(f"not an amount: {text!r}")
    return amount


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FlowError(f"not a whole number: {text!r}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FlowError(f"not a date: {text!r}") from None
