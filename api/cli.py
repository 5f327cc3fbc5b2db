"""The `ringback` command line."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from api.call_command import TestCallRequest, run_test_call
from audio.errors import AudioError
from infra.logs import configure_logging
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
    return parser


def _error(code: str, message: str) -> int:
    print(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False))
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        return _error("invalid-settings", str(exc))
    configure_logging(settings.log_level)
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
