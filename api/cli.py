"""The `ringback` command line.

A command's result goes to stdout. A failure ends with one JSON line on stderr,
`{"error": {"code": "stable-id", "message": "..."}}`, and exit status 2; operator mistakes
(settings, ports, the database) never print a traceback. docs/configuration.md lists the codes.
"""

import argparse
import asyncio
import errno
import getpass
import json
import logging
import socket
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import uvicorn
from alembic.util import CommandError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app import build_retention, create_app
from api.call_command import TestCallRequest, run_test_call
from api.config_check import check_settings, load_settings, mask_url, render
from api.hold_cli import HoldRefused, add_hold_parser, hold
from api.http_server import KEEP_ALIVE_S, HttpServer, max_connections
from api.passwords import Passwords, WeakPassword, check_strength
from api.people import CLI_ACTOR, LOCALES, People, PeopleError
from api.tokens import ApiToken, Role, create_token, list_tokens, revoke_token
from audio.errors import AudioError
from campaigns.retention import purge
from infra.db import make_engine, make_sessions, transaction, utcnow
from infra.errors import InfraError, PortUnavailable
from infra.logs import configure_logging
from infra.migrate import check_up_to_date, current_revision, head_revision, upgrade
from infra.settings import Settings
from telephony.sip.errors import CallError, RegistrationError, SipError

EXIT_ANSWERED = 0
EXIT_NOT_ANSWERED = 1
EXIT_USAGE = 2

log = logging.getLogger(__name__)
T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringback", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ringback {version('ringback')}")
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
    db_commands.add_parser(
        "purge", help="blank the phone numbers of jobs finished before RINGBACK_RETENTION_DAYS"
    )

    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create a token; prints it, only once")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", help="who or what it is for (default: the role)")
    token_commands.add_parser("list", help="every token, one JSON line each (never the secret)")
    revoke = token_commands.add_parser("revoke", help="revoke a token by id, effective at once")
    revoke.add_argument("id", type=int, help="the token's id (see `ringback token list`)")

    _user_parser(commands)
    add_hold_parser(commands)

    config = commands.add_parser("config", help="the settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser(
        "check", help="print the effective settings (secrets masked) and every problem; exit 2 "
        "when there is one"
    )
    return parser


def _user_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    user = commands.add_parser("user", help="people who sign in to the pages")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    create = user_commands.add_parser(
        "create", help="create a user; the password is asked for (or read with --password-stdin)")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--username", required=True, help="2 to 64 of a-z 0-9 . _ -")
    create.add_argument("--display-name", help="the name the pages show (default: username)")
    create.add_argument("--locale", choices=LOCALES, default="en", help="the pages' language")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")
    user_commands.add_parser("list", help="every user, one JSON line each")
    for name, text in (("disable", "disable a user and end their sessions, at once"),
                       ("enable", "enable a disabled user again")):
        command = user_commands.add_parser(name, help=text)
        command.add_argument("username")
    reset = user_commands.add_parser(
        "reset-password", help="set a new password and end the user's sessions; without "
        "--password-stdin a random one is made and printed, once")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true",
                       help="read the new password from the first line of stdin")


def _error(code: str, message: str) -> int:
    print(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False),
          file=sys.stderr)
    return EXIT_USAGE


def _print_json(value: dict[str, object]) -> None:
    print(json.dumps(value, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _config_check()
    try:
        settings = load_settings()
    except InfraError as exc:
        return _error(exc.code, str(exc))
    configure_logging(settings.log_level, settings.log_format, settings.default_region)
    try:
        return _COMMANDS[args.command](args, settings)
    except InfraError as exc:
        return _error(exc.code, str(exc))
    except CommandError as exc:
        return _error("migration-failed", str(exc))
    except SQLAlchemyError as exc:
        return _database_error(exc, settings)


def _config_check() -> int:
    report = check_settings()
    print(render(report))
    if report.problems:
        return _error("invalid-settings", "; ".join(map(str, report.problems)))
    return 0


def _database_error(exc: SQLAlchemyError, settings: Settings) -> int:
    code = "database-unreachable" if isinstance(exc, OperationalError) else "database-error"
    reason = str(getattr(exc, "orig", None) or exc).strip()
    return _error(code, f"RINGBACK_DATABASE_URL ({mask_url(settings.database)}): {reason}")


def _db(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database
    if args.db_command == "upgrade":
        upgrade(url)
        _print_json({"revision": current_revision(url)})
    elif args.db_command == "purge":
        return _purge(settings)
    else:
        current, head = current_revision(url), head_revision()
        _print_json({"revision": current, "head": head, "up_to_date": current == head})
    return 0


def _purge(settings: Settings) -> int:
    retention = build_retention(settings)
    if retention is None:
        return _error("invalid-settings", "RINGBACK_RETENTION_DAYS is not set: everything is "
                      "kept, nothing to purge")
    cutoff = retention.cutoff(utcnow())
    counts = _in_transaction(settings, lambda session: purge(session, cutoff))
    _print_json({"cutoff": cutoff.isoformat(), "purged": counts})
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    if args.token_command == "create":
        role = Role(args.role)
        print(_in_transaction(settings, lambda s: create_token(s, role, args.name or role.value)))
    elif args.token_command == "list":
        for token in _in_transaction(settings, lambda s: list(map(_token_json, list_tokens(s)))):
            _print_json(token)
    else:
        revoked = _in_transaction(settings, lambda s: _revoked(s, args.id))
        if revoked is None:
            return _error("unknown-token", f"no token has id {args.id}: see `ringback token list`")
        _print_json(revoked)
    return 0


def _user(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _user_command(args, settings)
    except PeopleError as exc:
        return _error(exc.code, exc.message)
    except WeakPassword as exc:
        return _error("weak-password", str(exc))
    except PasswordUnavailable as exc:
        return _error("password-required", str(exc))


def _hold(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return hold(args, settings)
    except HoldRefused as exc:
        return _error(exc.code, exc.message)


class PasswordUnavailable(Exception):
    """No password to read: no terminal to ask on, and no --password-stdin."""


def _read_password(from_stdin: bool) -> str:
    """From stdin's first line, or asked twice on the terminal; never from an argument, where
    `ps` and the shell history would keep it."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise PasswordUnavailable("no terminal to ask for the password on: pipe it in with "
                                  "--password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise PasswordUnavailable("the two passwords differ")
    return first


def _user_command(args: argparse.Namespace, settings: Settings) -> int:
    command = args.user_command
    if command == "create":
        password = _read_password(args.password_stdin)
        check_strength(password, args.username.strip().lower())
        person = _with_people(settings, lambda people: people.create(
            CLI_ACTOR, args.username, args.role, password, display_name=args.display_name,
            locale=args.locale))
        _print_json(person.as_json())
    elif command == "list":
        for person in _with_people(settings, lambda people: people.list()):
            _print_json(person.as_json())
    elif command == "disable":
        _print_json(_with_people(settings, lambda people: people.disable(
            CLI_ACTOR, args.username)).as_json())
    elif command == "enable":
        _print_json(_with_people(settings, lambda people: people.enable(
            CLI_ACTOR, args.username)).as_json())
    else:
        given = _read_password(True) if args.password_stdin else None
        person, password = _with_people(settings, lambda people: people.reset_password(
            CLI_ACTOR, args.username, given))
        shown = person.as_json()
        if given is None:
            shown["password"] = password  # made here: shown this once, to hand over
        _print_json(shown)
    return 0


def _with_people(settings: Settings, work: Callable[[People], T]) -> T:
    """`work` with the people service on the migrated database."""
    url = settings.database
    check_up_to_date(url)
    engine = make_engine(url)
    try:
        return work(People(make_sessions(engine), Passwords()))
    finally:
        engine.dispose()


def _revoked(session: Session, token_id: int) -> dict[str, object] | None:
    token = revoke_token(session, token_id)
    return None if token is None else _token_json(token)


def _token_json(token: ApiToken) -> dict[str, object]:
    """What may be shown of a token: never its hash."""
    return {
        "id": token.id,
        "name": token.name,
        "role": str(token.role),
        "created_at": token.created_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def _in_transaction(settings: Settings, work: Callable[[Session], T]) -> T:
    """`work` in one transaction on the migrated database; its result outlives the session."""
    url = settings.database
    check_up_to_date(url)
    engine = make_engine(url)
    try:
        with transaction(make_sessions(engine)) as session:
            return work(session)
    finally:
        engine.dispose()


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """The HTTP port is taken first, so a busy one is named before anything starts. Development
    migrates its own database; production must run `ringback db upgrade`."""
    with listen_http(settings.http_host, settings.http_port) as listener:
        if settings.environment == "development":
            upgrade(settings.database)
        check_up_to_date(settings.database)
        connections = max_connections(settings)
        app = StartupGuard(create_app(settings))
        config = uvicorn.Config(app, loop="asyncio", http="h11", ws="none", lifespan="on",
                                log_config=None, access_log=False, timeout_keep_alive=KEEP_ALIVE_S)
        server = HttpServer(config, listener, max_connections=connections,
                            request_timeout_s=settings.http_request_timeout_s)
        log.info("HTTP on %s:%d; at most %d connections at once (ulimit -n and the calls), "
                 "a request must arrive whole within %gs", *listener.getsockname()[:2],
                 connections, settings.http_request_timeout_s)
        try:
            server.run()
        except SystemExit:  # uvicorn's way out of a failed start-up: reported below
            if app.failure is None:
                raise
        return 0 if app.failure is None else _startup_error(app.failure)


def listen_http(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for uvicorn to serve on; `PortUnavailable` names it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PortUnavailable(f"RINGBACK_HTTP_HOST: cannot listen on {host!r}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, as uvicorn
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"RINGBACK_HTTP_PORT: port {port} on {host} is already in use: stop what "
                "listens there or choose another port"
            ) from None
        raise PortUnavailable(
            f"RINGBACK_HTTP_HOST, RINGBACK_HTTP_PORT: cannot listen on {host}:{port}: "
            f"{exc.strerror or exc}"
        ) from None
    return sock


class StartupGuard:
    """The app, with a failure of its start-up (lifespan) kept in `failure` for the CLI to report
    as one JSON line, instead of a traceback in the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failure: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_quietly(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "lifespan.startup.complete"
            if message["type"] == "lifespan.startup.failed":
                message = {"type": message["type"]}  # without the traceback text
            await send(message)

        try:
            await self.app(scope, receive, send_quietly)
        except Exception as exc:
            if started:
                raise
            self.failure = exc


def _startup_error(exc: Exception) -> int:
    if isinstance(exc, InfraError):
        return _error(exc.code, str(exc))
    if not isinstance(exc, OSError | SipError | AudioError):
        log.error("start-up failed", exc_info=exc)  # not an operator's mistake: a bug
    return _error("startup-failed", str(exc) or type(exc).__name__)


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


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "call": _call, "db": _db, "serve": _serve, "token": _token, "user": _user, "hold": _hold,
}

if __name__ == "__main__":
    sys.exit(main())
