"""`ringback call TARGET`, the operator's test call, run as a real process against sipp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.ports import allocate_ports
from tests.conftest import SippFactory

pytestmark = pytest.mark.peers

RINGBACK = Path(sys.executable).with_name("ringback")


def run_call(args: list[str], tmp_path: Path) -> tuple[int, dict[str, object], str]:
    block = allocate_ports(20)
    env = {
        **os.environ,
        "RINGBACK_SIP_PORT": "0",
        "RINGBACK_RTP_PORT_MIN": str(block[0]),
        "RINGBACK_RTP_PORT_MAX": str(block.last),
        "RINGBACK_DATA_DIR": str(tmp_path / "data"),
    }
    try:
        done = subprocess.run(
            [str(RINGBACK), "call", *args], env=env, capture_output=True, text=True,
            timeout=60, cwd=tmp_path, check=False,
        )
    finally:
        block.release()
    # Exactly one JSON line: the report on stdout, or an error ending stderr (exit 2).
    lines = done.stdout.strip().splitlines() or done.stderr.strip().splitlines()[-1:]
    assert len(lines) == 1, (done.stdout, done.stderr[-3000:])
    assert (done.returncode == 2) == (not done.stdout), (done.stdout, done.stderr[-3000:])
    return done.returncode, json.loads(lines[0]), done.stderr


def test_answered_call_speaks_and_collects_the_digit(sipp: SippFactory, tmp_path: Path) -> None:
    callee = sipp("uas_answer_dtmf", service="client", calls=1, dtmf_digit="7", start=True)
    code, report, _ = run_call(
        [f"sip:client@127.0.0.1:{callee.port}", "--say", "Hello, this is a test call.",
         "--digits", "1", "--timeout", "10"], tmp_path,
    )
    assert code == 0, report
    assert report["outcome"] == "answered" and report["sip_status"] == 200
    assert report["digits"] == "7"
    assert report["end_reason"] == "local_hangup"
    durations = report["durations"]
    assert isinstance(durations, dict) and set(durations) == {"setup_s", "talk_s", "total_s"}
    assert list((tmp_path / "data" / "prompts").glob("*.ulaw"))  # rendered into the cache
    assert callee.wait(15) == 0, callee.describe()  # our BYE was answered


def test_busy_is_reported_with_exit_code_1(sipp: SippFactory, tmp_path: Path) -> None:
    callee = sipp("uas_status", service="busy", status=486, calls=1, start=True)
    code, report, _ = run_call([f"sip:busy@127.0.0.1:{callee.port}", "--digits", "0"], tmp_path)
    assert code == 1
    assert report["outcome"] == "busy" and report["sip_status"] == 486


def test_bad_arguments_are_a_json_error(tmp_path: Path) -> None:
    code, report, _ = run_call(["sip:x@127.0.0.1:9", "--timeout", "-1"], tmp_path)
    assert code == 2
    error = report["error"]
    assert isinstance(error, dict) and error["code"] == "invalid-arguments"


def test_missing_wav_is_a_json_error(tmp_path: Path) -> None:
    code, report, stderr = run_call(
        ["sip:x@127.0.0.1:9", "--play", str(tmp_path / "missing.wav")], tmp_path
    )
    assert code == 2
    error = report["error"]
    assert isinstance(error, dict) and error["code"] == "audio-error"
    assert "Traceback" not in stderr
