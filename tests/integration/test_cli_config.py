"""The `ringback` console script as an operator runs it: `config check`, start-up failures of
`serve` (one JSON line on stderr, exit 2, no traceback), `--version`, and the token commands
against a running service."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from lab.ringback import RingbackService

RINGBACK = Path(sys.executable).with_name("ringback")
GOOD_SECRET = "whsec_" + base64.b64encode(b"inbound-secret-of-32-random-byte").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"outbound-secret-24-bytes").decode()
PRODUCTION = {"environment": "production", "crm_webhook_secret": GOOD_SECRET,
              "crm_outbound_secret": OTHER_SECRET}


def ringback(
    args: list[str], workdir: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    """The console script with exactly `settings` (`name=value` -> `RINGBACK_NAME`), run in
    `workdir` (no `.env` there) with its data in `workdir/data`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RINGBACK_")}
    env["RINGBACK_DATA_DIR"] = str(workdir / "data")
    env.update({f"RINGBACK_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run([str(RINGBACK), *args], env=env, cwd=workdir, capture_output=True,
                          text=True, timeout=120, check=False)


def error_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The failure as documented: exit 2, one JSON error line ending stderr, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith('{"error"')]
    assert len(errors) == 1 and done.stderr.splitlines()[-1] == errors[0], done.stderr[-3000:]
    error: dict[str, Any] = json.loads(errors[0])["error"]
    assert set(error) == {"code", "message"}
    return error


BAD_SETTINGS = [
    ({"default_timezone": "Europe/Moskow"}, "RINGBACK_DEFAULT_TIMEZONE: unknown time zone"),
    ({"calendar_timezone": "Europe/Moskow"}, "RINGBACK_CALENDAR_TIMEZONE: unknown time zone"),
    ({"default_locale": "de"}, "RINGBACK_DEFAULT_LOCALE: the survey has no texts for 'de'"),
    ({"default_region": "XX"}, "RINGBACK_DEFAULT_REGION: unknown phone region 'XX'"),
    ({"inbound_status": "200"}, "RINGBACK_INBOUND_STATUS: inbound calls can be refused with"),
    ({"channel_limit": "20", "rtp_port_min": "30000", "rtp_port_max": "30019"},
     "20 channels need 20 even RTP ports and descriptors"),
    ({"sip_dial_template": "sip:trunk.example.net"}, "RINGBACK_SIP_DIAL_TEMPLATE: must contain"),
    ({"sip_dial_template": "sip:{user}@trunk"}, "RINGBACK_SIP_DIAL_TEMPLATE: only {phone}"),
    ({"sip_dial_template": "sip:{phone@trunk"}, "RINGBACK_SIP_DIAL_TEMPLATE: bad syntax"),
    ({"calendar_hours": "mon-fry 10:00-19:00"}, "RINGBACK_CALENDAR_HOURS: unknown day 'fry'"),
    ({"calling_window_hours": "mon-fri 21:00-09:00"},
     "RINGBACK_CALLING_WINDOW_HOURS: hours must start before they end"),
    ({"calendar_extra_holidays": '["2026-13-01"]'},
     "RINGBACK_CALENDAR_EXTRA_HOLIDAYS: bad date '2026-13-01'"),
    ({"calendar_extra_working_days": "2026-12-27"},
     "RINGBACK_CALENDAR_EXTRA_WORKING_DAYS: not valid JSON"),
    ({"survey_texts": '{"ru": {"survey.question": "Оцените'},
     "RINGBACK_SURVEY_TEXTS: not valid JSON"),
    ({"survey_texts": '{"ru": {"survey.hello": "Привет"}}'},
     "RINGBACK_SURVEY_TEXTS: flow 'survey': override for unknown prompts ['survey.hello']"),
    ({"warning_retry_delays": "15m, soon, next-window"},
     "RINGBACK_WARNING_RETRY_DELAYS: retry delay 'soon'"),
    ({"warning_texts": '{"en": {"warning.menu": "Your balance: {balance}."}}'},
     "RINGBACK_WARNING_TEXTS: flow 'campaign_warning', locale 'en', prompt 'warning.menu': "
     "no value for placeholders ['balance']"),
    ({"manager_phone": "8 495 123-45-67"}, "RINGBACK_MANAGER_PHONE: write it in E.164"),
    ({"database_url": "postgres://rb:db-pass@db/rb"},
     "RINGBACK_DATABASE_URL: postgres:// is not supported: write postgresql+psycopg://"),
    ({"database_url": "mysql://rb:db-pass@db/rb"},
     "RINGBACK_DATABASE_URL: mysql:// is not supported"),
    ({"crm_url": "ftp://crm.example/hook"}, "RINGBACK_CRM_URL: must be an http:// or https://"),
    ({**PRODUCTION, "crm_webhook_secret": "hunter2"},
     "RINGBACK_CRM_WEBHOOK_SECRET: must be whsec_ + base64"),
    ({**PRODUCTION, "crm_outbound_secret": "whsec_YQ=="},
     "RINGBACK_CRM_OUTBOUND_SECRET: too short"),
    ({**PRODUCTION, "crm_webhook_secret": "whsec_not*base64*at*all"},
     "RINGBACK_CRM_WEBHOOK_SECRET: not valid base64"),
    ({"environment": "production"}, "RINGBACK_CRM_WEBHOOK_SECRET: production refuses the public"),
]


@pytest.mark.parametrize(("settings", "expected"), BAD_SETTINGS,
                         ids=[expected.split(":")[0] + f"-{n}"
                              for n, (_, expected) in enumerate(BAD_SETTINGS)])
def test_config_check_names_each_bad_setting(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    done = ringback(["config", "check"], tmp_path, **settings)
    assert expected in error_of(done)["message"]
    assert expected in done.stdout  # the report lists the problem under the settings
    for secret in ("hunter2", "whsec_YQ==", "db-pass", GOOD_SECRET, OTHER_SECRET):
        assert secret not in done.stdout + done.stderr


def test_config_check_prints_every_setting_masked_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"RINGBACK_CRM_OUTBOUND_SECRET={OTHER_SECRET}\n")
    done = ringback(
        ["config", "check"], tmp_path, environment="production", crm_webhook_secret=GOOD_SECRET,
        sip_password="trunk-pass", database_url="postgresql+psycopg://rb:db-pass@db.invalid/rb",
        crm_url="https://crm.example/hook?token=crm-pass", default_timezone="Asia/Vladivostok",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "# no problems found" and done.stderr == ""
    for secret in (GOOD_SECRET, OTHER_SECRET, "trunk-pass", "db-pass", "crm-pass"):
        assert secret not in done.stdout
    assert any(line.split() == ["RINGBACK_CRM_WEBHOOK_SECRET", "***", "[environment]"]
               for line in lines)
    assert any(line.split() == ["RINGBACK_CRM_OUTBOUND_SECRET", "***", "[.env]"] for line in lines)
    assert any(line.split() == ["RINGBACK_DATABASE_URL",
                                "postgresql+psycopg://rb:***@db.invalid/rb", "[environment]"]
               for line in lines)
    assert any(line.split() == ["RINGBACK_HTTP_PORT", "8080", "[default]"] for line in lines)
    shown = {line.split()[0] for line in lines if line.startswith("RINGBACK_")}
    assert len(shown) == len(lines) - 2  # a header, one line per setting, the verdict
    assert {"RINGBACK_DEFAULT_TIMEZONE", "RINGBACK_SIP_PASSWORD", "RINGBACK_TTS_RATE_WPM"} <= shown


def test_config_check_reports_every_problem_not_only_the_first(tmp_path: Path) -> None:
    done = ringback(["config", "check"], tmp_path, default_timezone="Europe/Moskow",
                    default_region="XX", calendar_hours="mon-fry 10:00-19:00")
    message = error_of(done)["message"]
    for setting in ("DEFAULT_TIMEZONE", "DEFAULT_REGION", "CALENDAR_HOURS"):
        assert f"RINGBACK_{setting}:" in message
    assert "# 3 problem(s):" in done.stdout


def test_version_comes_from_the_installed_package(tmp_path: Path) -> None:
    done = ringback(["--version"], tmp_path)
    assert done.returncode == 0
    assert done.stdout == f"ringback {version('ringback')}\n"


# --- `serve` start-up failures ---------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A TCP port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_refuses_a_bad_setting_before_anything(tmp_path: Path) -> None:
    done = ringback(["serve"], tmp_path, default_timezone="Europe/Moskow",
                    http_port=str(free_port()))
    error = error_of(done)
    assert error["code"] == "invalid-settings"
    assert error["message"].startswith("RINGBACK_DEFAULT_TIMEZONE: unknown time zone")
    assert not (tmp_path / "data").exists()  # no database was made


def test_serve_names_an_http_port_in_use_before_anything(tmp_path: Path, taken_port: int) -> None:
    done = ringback(["serve"], tmp_path, http_port=str(taken_port))
    error = error_of(done)
    assert error["code"] == "port-unavailable"
    assert f"RINGBACK_HTTP_PORT: port {taken_port} on 127.0.0.1 is already in use" \
        in error["message"]
    assert not (tmp_path / "data").exists()  # found before the database was migrated


def test_serve_in_production_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = ringback(["serve"], tmp_path, http_port=str(free_port()), **PRODUCTION)
    error = error_of(done)
    assert error["code"] == "database-not-migrated"
    assert "run `ringback db upgrade`" in error["message"]


def test_serve_names_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://rb:db-pass@127.0.0.1:{free_port()}/rb"
    done = ringback(["serve"], tmp_path, http_port=str(free_port()), database_url=url)
    error = error_of(done)
    assert error["code"] == "database-unreachable"
    assert error["message"].startswith("RINGBACK_DATABASE_URL (postgresql+psycopg://rb:***@")
    assert "db-pass" not in done.stderr


def test_serve_reports_a_failed_start_up_in_one_line(tmp_path: Path) -> None:
    """A failure inside the app's start-up (here the SIP port is taken) is one JSON line too."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip_squatter:
        sip_squatter.bind(("127.0.0.1", 0))
        done = ringback(["serve"], tmp_path, http_port=str(free_port()),
                        sip_port=str(sip_squatter.getsockname()[1]))
    error = error_of(done)
    assert error["code"] == "startup-failed"
    assert "Address already in use" in error["message"]


# --- tokens ----------------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RingbackService]:
    svc = RingbackService(tmp_path / "svc", {})
    try:
        yield svc.start()
    finally:
        svc.close()


def test_token_list_and_revoke_take_effect_on_a_running_service(
    service: RingbackService
) -> None:
    workdir = service.workdir
    created = ringback(["token", "create", "--role", "admin", "--name", "ops"], workdir)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert service.get("/api/v1/outbox", token)[0] == 200

    listed = ringback(["token", "list"], workdir)
    assert listed.returncode == 0, listed.stderr
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert set(entry) == {"id", "name", "role", "created_at", "revoked_at"}
    assert (entry["name"], entry["role"], entry["revoked_at"]) == ("ops", "admin", None)
    assert token not in listed.stdout and token.removeprefix("rb_") not in listed.stdout

    revoked = ringback(["token", "revoke", str(entry["id"])], workdir)
    assert revoked.returncode == 0, revoked.stderr
    first = json.loads(revoked.stdout)
    assert first["id"] == entry["id"] and first["revoked_at"] is not None
    assert service.get("/api/v1/outbox", token)[0] == 401  # at once: no restart, no cache

    again = ringback(["token", "revoke", str(entry["id"])], workdir)
    assert again.returncode == 0 and json.loads(again.stdout) == first  # idempotent
    listed = ringback(["token", "list"], workdir)
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [first]

    unknown = error_of(ringback(["token", "revoke", str(entry["id"] + 1)], workdir))
    assert unknown["code"] == "unknown-token" and str(entry["id"] + 1) in unknown["message"]
