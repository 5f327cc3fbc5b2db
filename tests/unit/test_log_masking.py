"""Phone numbers are masked in log lines, tracebacks and SQL errors; ids are not; JSON lines."""

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert
from sqlalchemy.exc import IntegrityError

import infra.logs
from infra.db import make_engine
from infra.logs import (
    JsonFormatter,
    MaskingFormatter,
    TextFormatter,
    configure_logging,
    mask_phone,
    mask_phone_numbers,
    request_id,
)

PHONE = "+79991234567"


@pytest.mark.parametrize(("text", "masked"), [
    ("call 8 (999) 123-45-67 now", "call * (***) ***-**-67 now"),
    ("+7 999 123 45 67", "+* *** *** ** 67"),
    ("to +79991234567.", "to +*********67."),
    ("89991234567", "*********67"),
    ("8-999-123-45-67", "*-***-***-**-67"),
    ("<sip:+79991234567@10.0.0.1:5060>", "<sip:+*********67@10.0.0.1:5060>"),
    ("sip:79991234567@host", "sip:*********67@host"),
    ("tel:+7-999-123-45-67", "tel:+*-***-***-**-67"),
    ('{"phone":"+79991234567"}', '{"phone":"+*********67"}'),
    ("[parameters: ('+79991234567', 'c-1')]", "[parameters: ('+*********67', 'c-1')]"),
    ("+44 20 7946 0958 and +1 212 555 0123", "+** ** **** **58 and +* *** *** **23"),
])
def test_phone_numbers_are_masked_but_the_last_two_digits(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked


@pytest.mark.parametrize("text", [
    "evt-1234567890",
    "evt-9991234567",
    "evt_9991234567 and job_89991234567",
    "550e8400-e29b-41d4-a716-446655440000",
    "12345678-1234-1234-1234-799912345678",
    "Call-ID: a84b4c76e66710@pc33.atlanta.com",
    "Call-ID: 3848276298220188511@atlanta.example.com",
    "2026-12-01 20:56:44,123 at 1764622604 on port 5060",
    "79991234567-c2f4",
])
def test_ids_times_and_numbers_that_are_no_phone_stay(text: str) -> None:
    assert mask_phone_numbers(text) == text


def test_numbers_without_a_country_code_are_read_in_the_given_region() -> None:
    assert mask_phone_numbers("(212) 555-0123", "US") == "(***) ***-**23"
    assert mask_phone_numbers("(212) 555-0123", "RU") == "(212) 555-0123"


@pytest.fixture
def formatted() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _integrity_error(engine_url: str, hide: bool) -> IntegrityError:
    engine = make_engine(engine_url) if hide else create_engine(engine_url)
    phones = Table("phones", MetaData(), Column("id", Integer, primary_key=True),
                   Column("phone", String, unique=True))
    phones.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(phones).values(phone=PHONE))
            connection.execute(insert(phones).values(phone=PHONE))
    except IntegrityError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the second insert was taken")


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_a_database_traceback_with_sql_parameters_is_masked(
    formatted: tuple[logging.Logger, io.StringIO, logging.Handler],
    formatter: MaskingFormatter, tmp_path: Path,
) -> None:
    logger, stream, handler = formatted
    handler.setFormatter(formatter)
    error = _integrity_error(f"sqlite:///{tmp_path / 'plain.db'}", hide=False)
    assert PHONE in str(error)  # SQLAlchemy shows the parameters...
    try:
        raise error
    except IntegrityError:
        logger.exception("storing %s failed", PHONE)
    output = stream.getvalue()
    assert PHONE not in output  # ...our log lines do not
    assert output.count("+*********67") == 2  # the message and the [parameters: ...]
    assert "Traceback (most recent call last)" in output


def test_our_engines_hide_sql_parameters(tmp_path: Path) -> None:
    error = _integrity_error(f"sqlite:///{tmp_path / 'ours.db'}", hide=True)
    assert PHONE not in str(error)
    assert "hide_parameters=True" in str(error)


def test_the_log_record_itself_is_not_changed(
    formatted: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = formatted
    handler.setFormatter(TextFormatter())
    records: list[logging.LogRecord] = []
    logger.addFilter(lambda record: records.append(record) or True)
    logger.warning("calling %s", PHONE)
    assert "calling +*********67" in stream.getvalue()
    assert records[0].getMessage() == f"calling {PHONE}"


def test_json_lines_parse_one_object_per_record(
    formatted: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = formatted
    handler.setFormatter(JsonFormatter())
    logger.info("plain line")
    token = request_id.set("req-1")
    try:
        logger.warning('two\nlines "quoted" %s', PHONE)
    finally:
        request_id.reset(token)
    try:
        raise ValueError(f"bad number {PHONE}")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 3
    assert entries[0]["message"] == "plain line"
    assert entries[0].keys() == {"time", "level", "logger", "message"}
    assert (entries[0]["level"], entries[0]["logger"]) == ("INFO", "tests.masking")
    assert entries[0]["time"].endswith("+00:00")
    assert entries[1]["message"] == 'two\nlines "quoted" +*********67'
    assert entries[1]["request_id"] == "req-1"
    assert "request_id" not in entries[2]
    assert entries[2]["exception"].startswith("Traceback (most recent call last)")
    assert "ValueError: bad number +*********67" in entries[2]["exception"]


def test_text_lines_name_the_request(
    formatted: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = formatted
    handler.setFormatter(TextFormatter())
    token = request_id.set("req-2")
    try:
        logger.warning("inside")
    finally:
        request_id.reset(token)
    logger.warning("outside")
    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith("WARNING tests.masking: inside [request_id=req-2]")
    assert outside.endswith("WARNING tests.masking: outside")


@pytest.fixture
def restored_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(infra.logs, "_region", infra.logs._region)  # restored after the test
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("apscheduler", "httpx", "httpcore")
    levels = {name: logging.getLogger(name).level for name in names}
    migration = logging.getLogger("alembic.runtime.migration")
    filters = migration.filters[:]
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        migration.filters[:] = filters
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize(("level", "scheduler_level"), [
    ("INFO", logging.WARNING), ("WARNING", logging.WARNING), ("DEBUG", logging.DEBUG),
])
def test_chatty_and_leaky_loggers_are_quieted(level: str, scheduler_level: int) -> None:
    configure_logging(level, "json", "US")
    assert logging.getLogger("apscheduler.executors.default").getEffectiveLevel() == scheduler_level
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    assert mask_phone_numbers("(212) 555-0123") == "(***) ***-**23"  # the configured region


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize(("level", "housekeeping_shown"), [("INFO", False), ("DEBUG", True)])
def test_alembic_housekeeping_lines_are_dropped_but_upgrades_are_logged(
    level: str, housekeeping_shown: bool, capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level, "text", "US")
    migration = logging.getLogger("alembic.runtime.migration")
    migration.info("Context impl %s.", "SQLiteImpl")
    migration.info("Will assume %s DDL.", "non-transactional")
    migration.info("Running upgrade %s -> %s, %s", "0004", "0005", "hold tips")
    logged = capsys.readouterr().err
    assert "Running upgrade 0004 -> 0005, hold tips" in logged
    assert ("Context impl SQLiteImpl." in logged) is housekeeping_shown
    assert ("Will assume non-transactional DDL." in logged) is housekeeping_shown


def test_one_stored_number_is_masked_as_in_text_even_one_the_matcher_misses() -> None:
    assert mask_phone(PHONE) == mask_phone_numbers(PHONE) == "+*********67"
    assert mask_phone("+10000000042") == "+*********42"  # not a valid number: masked anyway
