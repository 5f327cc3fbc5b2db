"""The `ringback` command line."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

import uvicorn
from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from api.app import create_app
from api.call_command import TestCallRequest, run_test_call
from api.tokens import Role, create_token
from audio.errors import AudioError
from infra.db import make_engine, make_sessions, transaction
from infra.errors import DatabaseNotMigrated
from infra.logs import configure_logging
from infra.migrate import check_up_to_date, current_revision, head_revision, upgrade
from infra.settings import Settings
from telephony.sip.errors import CallError, RegistrationError, SipError

EXIT_ANSWERED = 0
EXIT_NOT_ANSWERED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringback", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser(
        "call", help="place one robot call and print its outcome as one JSON line"
    )
    call.add_argument("target", help="sip:user@host[:port], user@host, or a user at the registrar")
    speech = call.add_mutually_exclusive_group()
    speech.add_argument("--say", metavar="TEXT", help="speak this text (rendered before dialing)")
    speech.add_argument("--play", metavar="FILE.wav", type=Path, help="play this 16-bit WAV")
    call.add_argument("--digits", type=int, default=1, help="keys to collect (0: none)")
    call.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each key")
    call.add_argument("--ring-timeout", type=float, help="seconds to ring before giving up")
    call.add_argument("--caller-id", help="user part of our From")
    call.add_argument("--language", help="speech language for --say (default from settings)")

    commands.add_parser(
        "serve", help="run the service: API, scheduler ticks and the SIP engine in one process"
    )

    db = commands.add_parser("db", help="the database schema (RINGBACK_DATABASE_URL)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="migrate to the newest schema; prints the revision")
    db_commands.add_parser("current", help="print the schema revision and the newest one")

    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create a token; prints it, only once")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", help="who or what it is for (default: the role)")
    return parser


def _error(code: str, message: str) -> int:
    print(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False))
    return EXIT_USAGE


def _print_json(value: dict[str, object]) -> None:
    print(json.dumps(value, ensure_ascii=False))


def _database_error(exc: SQLAlchemyError | CommandError) -> int:
    return _error("database-error", str(getattr(exc, "orig", None) or exc))


def _db(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database
    try:
        if args.db_command == "upgrade":
            upgrade(url)
            _print_json({"revision": current_revision(url)})
        else:
            current, head = current_revision(url), head_revision()
            _print_json({"revision": current, "head": head, "up_to_date": current == head})
    except CommandError as exc:
        return _error("migration-failed", str(exc))
    except SQLAlchemyError as exc:
        return _database_error(exc)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database
    role = Role(args.role)
    try:
        check_up_to_date(url)
        engine = make_engine(url)
        try:
            with transaction(make_sessions(engine)) as session:
                token = create_token(session, role, args.name or role.value)
        finally:
            engine.dispose()
    except DatabaseNotMigrated as exc:
        return _error(exc.code, str(exc))
    except SQLAlchemyError as exc:
        return _database_error(exc)
    print(token)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            (f"RINGBACK_{'_'.join(map(str, error['loc'])).upper()}: " if error["loc"] else "")
            + error["msg"]
            for error in exc.errors(include_input=False, include_url=False)
        )  # never echo the values: some are secrets
        return _error("invalid-settings", problems)
    configure_logging(settings.log_level)
    if args.command == "db":
        return _db(args, settings)
    if args.command == "token":
        return _token(args, settings)
    if args.command == "serve":
        return _serve(settings)
    return _call(args, settings)


def _serve(settings: Settings) -> int:
    """Development migrates its own database; production must run `ringback db upgrade`."""
    try:
        if settings.environment == "development":
            upgrade(settings.database)
        check_up_to_date(settings.database)
    except DatabaseNotMigrated as exc:
        return _error(exc.code, str(exc))
    except (CommandError, SQLAlchemyError) as exc:
        return _database_error(exc)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                            loop="asyncio", log_config=None, access_log=False)
    try:
        uvicorn.Server(config).run()
    except (RegistrationError, OSError) as exc:
        return _error("startup-failed", str(exc))
    return 0


def _call(args: argparse.Namespace, settings: Settings) -> int:
    if args.digits < 0 or args.timeout <= 0:
        return _error("invalid-arguments", "--digits must be ≥ 0 and --timeout > 0")
    request = TestCallRequest(
        target=args.target,
        say=args.say,
        play=args.play,
        digits=args.digits,
        timeout_s=args.timeout,
        ring_timeout_s=args.ring_timeout,
        caller_id=args.caller_id,
        language=args.language,
    )
    try:
        report = asyncio.run(run_test_call(settings, request))
    except RegistrationError as exc:
        return _error("registration-failed", str(exc))
    except CallError as exc:
        return _error("call-failed", str(exc))
    except SipError as exc:
        return _error("sip-error", str(exc))
    except (AudioError, FileNotFoundError) as exc:
        return _error("audio-error", str(exc))
    except OSError as exc:  # e.g. the SIP port is taken
        return _error("os-error", str(exc))
    print(report.to_json())
    return EXIT_ANSWERED if report.outcome == "answered" else EXIT_NOT_ANSWERED


if __name__ == "__main__":
    sys.exit(main())
