"""The hold-tips, clips and prompts API (api/hold_tips.py, api/prompts.py) on SQLite and
PostgreSQL: the routers with the error handlers over the real services, real speech (espeak-ng)
and real upload decoding."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.errors import install_error_handlers
from api.hold_tips import router as hold_router
from api.prompts import router as prompts_router
from api.state import SoundServices
from api.tokens import Role, create_token
from api.uploads import LIMITS
from audio.isolated import IsolatedDecoder
from audio.prompts import PromptCache
from audio.speech import voices_from_config
from audio.wav import wav_bytes
from campaigns.audio_clips import ClipPrompts
from campaigns.hold_models import AudioClip, PromptRecording
from campaigns.hold_sounds import HoldSounds
from campaigns.hold_stats import HoldStats
from campaigns.hold_tips import HoldTips
from campaigns.prompt_recordings import PromptRecordings
from infra.db import utcnow
from ivr.catalog import FlowCatalog, FlowOptions

TIPS = "/api/v1/hold-tips"
LINES = "/api/v1/hold-lines"


@pytest.fixture
def app(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[FastAPI]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(hold_router)
    app.include_router(prompts_router)
    prompts = PromptCache(tmp_path / "prompts", voices_from_config({}))
    clips = ClipPrompts(sessions, prompts)
    catalog = FlowCatalog(FlowOptions(company="Acme", default_locale="en"))
    app.state.sessions = sessions
    app.state.sounds = SoundServices(
        HoldTips(sessions, utcnow), HoldStats(sessions, utcnow),
        PromptRecordings(sessions, utcnow, catalog, clips), HoldSounds(prompts, clips),
        IsolatedDecoder())
    yield app
    app.state.sounds.decoder.close()


def client_for(app: FastAPI, sessions: sessionmaker[Session], role: Role, name: str
               ) -> TestClient:
    with sessions.begin() as session:
        token = create_token(session, role, name)
    return TestClient(app, headers={"authorization": f"Bearer {token}"})


@pytest.fixture
def client(app: FastAPI, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with client_for(app, sessions, Role.MARKETING, "mila") as test_client:
        yield test_client


def tone_wav(seconds: float = 1.0, rate: int = 16000, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    return wav_bytes(samples.tobytes(), rate)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return float(wav.getnframes()) / 8000


def new_tip(client: TestClient, title: str, **fields: Any) -> dict[str, Any]:
    body = {"title": title, "locale": "ru", "lines": ["main"],
            "text": "Оплатить счёт можно в личном кабинете.", **fields}
    response = client.post(TIPS, json=body)
    assert response.status_code == 201, response.text
    tip: dict[str, Any] = response.json()
    return tip


def error_code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def stored(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        return (session.scalar(select(func.count()).select_from(AudioClip)) or 0,
                session.scalar(select(func.count()).select_from(PromptRecording)) or 0)


def test_a_tip_is_created_read_changed_and_deleted(client: TestClient) -> None:
    tip = new_tip(client, "Счета", weight=3,
                  schedule={"starts_on": "2026-01-01", "ends_on": "2026-12-31",
                            "daily_from": "09:00:00", "daily_to": "18:00:00"})
    assert tip["render_error"] is None and tip["version"] == 1 and tip["enabled"] is True
    assert tip["lines"] == ["main"] and tip["weight"] == 3
    assert tip["schedule"]["daily_from"] == "09:00:00"
    assert (tip["plays"], tip["hangups"]) == (0, 0)
    assert tip["audio_url"] == f"{TIPS}/{tip['id']}/audio.wav"

    listed = client.get(TIPS, params={"line": "main"}).json()["items"]
    assert [item["id"] for item in listed] == [tip["id"]]

    changed = client.put(f"{TIPS}/{tip['id']}", json={
        "title": "Счета и оплата", "locale": "ru", "lines": ["main"], "text": "Новый текст.",
        "version": 1})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["title"] == "Счета и оплата"

    audio = client.get(tip["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert wav_seconds(audio.content) > 0.3

    assert error_code(client.delete(f"{TIPS}/{tip['id']}", params={"version": 1})) == \
        "edit-conflict"
    assert client.delete(f"{TIPS}/{tip['id']}", params={"version": 2}).status_code == 204
    missing = client.get(f"{TIPS}/{tip['id']}")
    assert missing.status_code == 404 and error_code(missing) == "tip-not-found"


def test_an_edit_on_a_stale_version_is_refused_and_changes_nothing(client: TestClient) -> None:
    tip = new_tip(client, "Первый")
    assert client.post(f"{TIPS}/{tip['id']}/disable", json={"version": 1}).status_code == 200
    stale = client.put(f"{TIPS}/{tip['id']}", json={
        "title": "Чужая правка", "locale": "ru", "lines": ["main"], "text": "x", "version": 1})
    assert stale.status_code == 409 and error_code(stale) == "edit-conflict"
    now = client.get(f"{TIPS}/{tip['id']}").json()
    assert (now["title"], now["enabled"], now["version"]) == ("Первый", False, 2)
    assert error_code(client.post(f"{TIPS}/{tip['id']}/enable", json={"version": 1})) == \
        "edit-conflict"


def test_a_line_is_reordered_and_a_stale_order_is_refused(client: TestClient) -> None:
    a, b, c = (new_tip(client, title)["id"] for title in ("A", "B", "C"))
    moved = client.put(f"{LINES}/main/order", json={"ids": [a, c, b]})
    assert moved.status_code == 200, moved.text
    assert [tip["id"] for tip in moved.json()["items"]] == [a, c, b]
    listed = client.get(TIPS, params={"line": "main"}).json()["items"]
    assert [tip["id"] for tip in listed] == [a, c, b]
    for stale in ([a, b], [a, b, c, c], [a, b, c, 9999]):
        refused = client.put(f"{LINES}/main/order", json={"ids": stale})
        assert refused.status_code == 409 and error_code(refused) == "edit-conflict"
    assert [tip["id"] for tip in client.get(TIPS).json()["items"]] == [a, c, b]


def test_lines_are_created_and_checked(client: TestClient) -> None:
    saved = client.put(f"{LINES}/sales", json={"title": "Sales", "rotation": "weight",
                                               "first_delay_s": 2, "gap_s": 4})
    assert saved.status_code == 200, saved.text
    assert saved.json()["rotation"] == "weight"
    names = [line["name"] for line in client.get(LINES).json()["items"]]
    assert names == ["main", "sales"]
    assert client.put(f"{LINES}/Bad Name", json={"title": "x"}).status_code == 422
    too_long = client.put(f"{LINES}/sales", json={"title": "x", "gap_s": 601})
    assert too_long.status_code == 422 and error_code(too_long) == "invalid-request"
    assert error_code(client.put(f"{LINES}/sales", json={"title": "x", "gap_clip_id": "0" * 64})
                      ) == "clip-not-found"
    assert error_code(client.post(TIPS, json={"title": "x", "locale": "ru", "lines": ["nope"],
                                              "text": "x"})) == "line-not-found"


def test_history_says_who_changed_what_and_when(client: TestClient) -> None:
    tip = new_tip(client, "История")
    client.put(f"{TIPS}/{tip['id']}", json={"title": "История 2", "locale": "ru",
                                            "lines": ["main"], "text": tip["text"],
                                            "version": 1})
    client.post(f"{TIPS}/{tip['id']}/disable")
    entries = client.get(f"{TIPS}/{tip['id']}/history").json()["items"]
    assert [entry["action"] for entry in entries] == [
        "hold_tip.disable", "hold_tip.update", "hold_tip.create"]
    assert {entry["actor"] for entry in entries} == {"token:mila"}
    assert entries[0]["changes"] == {"enabled": [True, False]}
    assert entries[1]["changes"] == {"title": ["История", "История 2"]}


def test_support_and_strangers_are_turned_away(app: FastAPI, sessions: sessionmaker[Session]
                                              ) -> None:
    with client_for(app, sessions, Role.SUPPORT, "anna") as support:
        for method, path in (("GET", TIPS), ("POST", TIPS), ("GET", LINES),
                             ("PUT", f"{LINES}/main/order"), ("POST", "/api/v1/clips"),
                             ("GET", "/api/v1/prompts"),
                             ("PUT", "/api/v1/prompts/survey.question/ru/recording")):
            response = support.request(method, path, json={})
            assert response.status_code == 403, (method, path)
            assert error_code(response) == "forbidden"
    with TestClient(app) as stranger:
        assert stranger.get(TIPS).status_code == 401
    with client_for(app, sessions, Role.ADMIN, "root") as admin:
        assert admin.get(TIPS).status_code == 200


def test_an_uploaded_recording_plays_as_a_tip(client: TestClient) -> None:
    uploaded = client.post("/api/v1/clips",
                           files={"file": ("tip.wav", tone_wav(1.5), "audio/wav")})
    assert uploaded.status_code == 201, uploaded.text
    clip = uploaded.json()
    assert abs(clip["duration_s"] - 1.5) < 0.01 and clip["source_name"] == "tip.wav"
    again = client.post("/api/v1/clips", files={"file": ("copy.wav", tone_wav(1.5))})
    assert again.json()["id"] == clip["id"]  # one sound is kept once
    tip = new_tip(client, "Запись", text=None, clip_id=clip["id"])
    audio = client.get(tip["audio_url"])
    assert abs(wav_seconds(audio.content) - 1.5) < 0.01


@pytest.mark.parametrize(("name", "data", "status", "code"), [
    ("empty.wav", b"", 422, "audio-empty"),
    ("notes.wav", b"These are my notes, not a recording.\n" * 20, 422, "audio-unreadable"),
    ("tip.docx", tone_wav(), 422, "audio-unsupported-type"),
    ("long.wav", tone_wav(200, rate=8000), 422, "audio-too-long"),
])
def test_refused_uploads_say_why_and_store_nothing(
    client: TestClient, sessions: sessionmaker[Session], name: str, data: bytes, status: int,
    code: str,
) -> None:
    for path in ("/api/v1/clips", "/api/v1/prompts/survey.question/ru/recording"):
        method = client.post if path.endswith("clips") else client.put
        response = method(path, files={"file": (name, data)})
        assert response.status_code == status, response.text
        assert error_code(response) == code
        assert response.json()["error"]["message"]
    assert stored(sessions) == (0, 0)


async def stream_upload(app: FastAPI, token: str, path: str, chunks: int
                        ) -> tuple[int, bytes, int]:
    """PUT a multipart body of `chunks` MiB without a Content-Length; the status, the body
    and how many of the chunks the app read."""
    parts = [b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
             b"Content-Type: audio/wav\r\n\r\n", *([b"\0" * (1024 * 1024)] * chunks),
             b"\r\n--b--\r\n"]
    read = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= len(parts):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": parts[read - 1], "more_body": read < len(parts)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "server": ("test", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"host", b"test"), (b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"multipart/form-data; boundary=b"),
                         (b"transfer-encoding", b"chunked")]}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read - 1


def test_a_50_mb_body_is_refused_413_before_it_is_read(
    app: FastAPI, client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        token = create_token(session, Role.MARKETING, "streamer")
    big = b"\0" * (50 * 1024 * 1024)
    assert len(big) > LIMITS.max_bytes
    response = client.post("/api/v1/clips", files={"file": ("big.wav", big)})
    assert response.status_code == 413 and error_code(response) == "audio-too-large"

    # No Content-Length (chunked): counted as it streams and cut off at the limit. Straight
    # over ASGI, since the test client reads a body whole before the app sees it.
    status, body, read = asyncio.run(stream_upload(
        app, token, "/api/v1/prompts/survey.question/ru/recording", chunks=100))
    assert status == 413 and json.loads(body)["error"]["code"] == "audio-too-large"
    assert read <= LIMITS.max_bytes // (1024 * 1024) + 2  # the rest was never read
    assert stored(sessions) == (0, 0)


def test_prompts_are_listed_recorded_heard_and_spoken_again(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    items = {(p["prompt_id"], p["locale"]): p
             for p in client.get("/api/v1/prompts").json()["items"]}
    question = items[("survey.question", "ru")]
    assert question["recordable"] is True and question["recording"] is None
    assert question["flows"] == ["survey"] and "оцените" in question["template"]
    balance = items[("warning.balance", "en")]
    assert balance["recordable"] is False and balance["call_values"] == ["balance"]
    assert balance["audio_url"] is None

    spoken = client.get(question["audio_url"])
    assert spoken.status_code == 200 and wav_seconds(spoken.content) > 1.0

    recorded = client.put("/api/v1/prompts/survey.question/ru/recording",
                          files={"file": ("question.wav", tone_wav(2.0))})
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["recording"]["source_name"] == "question.wav"
    heard = client.get(question["audio_url"])
    assert abs(wav_seconds(heard.content) - 2.0) < 0.01
    assert stored(sessions) == (1, 1)

    refused = client.put("/api/v1/prompts/warning.balance/en/recording",
                         files={"file": ("balance.wav", tone_wav())})
    assert refused.status_code == 409 and error_code(refused) == "prompt-has-values"
    assert error_code(client.get("/api/v1/prompts/warning.balance/en/audio.wav")) == \
        "prompt-has-values"
    assert client.put("/api/v1/prompts/nope/ru/recording",
                      files={"file": ("x.wav", tone_wav())}).status_code == 404

    removed = client.delete("/api/v1/prompts/survey.question/ru/recording")
    assert removed.status_code == 200 and removed.json()["recording"] is None
    assert abs(wav_seconds(client.get(question["audio_url"]).content)
               - wav_seconds(spoken.content)) < 0.01
    assert stored(sessions)[1] == 0
