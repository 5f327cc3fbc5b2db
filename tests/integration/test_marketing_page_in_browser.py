"""The marketing pages in a real browser: Debian's chromium driven by Playwright against a real
`ringback serve` (SQLite, no registrar). A marketing person writes a Russian tip and listens to
it, records a survey prompt, reorders and disables tips; support is turned away."""

from __future__ import annotations

import io
import json
import sqlite3
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Locator, Page

from audio.wav import wav_bytes
from lab.ringback import RingbackService
from tests.integration.test_pages_in_browser import create_users, sign_in

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    svc = RingbackService(tmp_path_factory.mktemp("marketing"),
                          {"RINGBACK_DEFAULT_LOCALE": "en", "RINGBACK_COMPANY_NAME": "Acme"})
    svc.start()
    create_users(svc, ("mila", "marketing", "en"), ("anna", "support", "en"),
                 ("vera", "marketing", "ru"))
    try:
        yield svc
    finally:
        svc.close()


def token(svc: RingbackService, role: str) -> str:
    done = svc.cli("token", "create", "--role", role, "--name", f"{role}-test")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def api(svc: RingbackService, path: str, secret: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"{svc.url}{path}",
                                     headers={"authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def rows(svc: RingbackService, table: str) -> int:
    with sqlite3.connect(svc.database) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return count


def tone_wav(path: Path, seconds: float, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.25 * 32767 * np.sin(2 * np.pi * 330 * t)).astype("<i2")
    path.write_bytes(wav_bytes(samples.tobytes(), rate))
    return path


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 8000 and wav.getnchannels() == 1
        return float(wav.getnframes()) / 8000


def post_recording(page: Page, form: Locator, recording: Path) -> int:
    """Submit a prompt's upload form with `recording`; the status of the answer."""
    form.locator("input[type=file]").set_input_files(str(recording))
    with page.expect_response(lambda r: r.url.endswith("/recording")) as posted:
        form.locator("button").click()
    page.wait_for_load_state()
    return posted.value.status


def create_tip(page: Page, title: str, text: str, locale: str = "ru") -> None:
    form = page.locator("form.tip-form")
    form.locator("input[name=title]").fill(title)
    form.locator("select[name=locale]").select_option(locale)
    form.locator("textarea[name=text]").fill(text)
    with page.expect_navigation():
        form.locator("button.save-tip").click()


def shown_titles(page: Page) -> list[str]:
    return page.locator("table.tips tr.tip .tip-title").all_inner_texts()


def preview_duration(page: Page, row: Any) -> float:
    audio = row.locator("audio")
    audio.evaluate("a => a.readyState >= 1 || new Promise(r => a.addEventListener("
                   "'loadedmetadata', r, {once: true}))")
    duration: float = audio.evaluate("a => a.duration")
    return duration


def test_marketing_writes_listens_records_reorders_and_disables(
    service: RingbackService, context: BrowserContext, tmp_path: Path,
) -> None:
    secret = token(service, "marketing")
    page = context.new_page()
    sign_in(page, service, "mila", "/marketing")
    assert page.url == f"{service.url}/marketing"
    assert page.inner_text("h1") == "Hold tips"

    # A Russian text tip, heard as the caller hears it.
    create_tip(page, "Оплата", "Оплатить счёт можно в личном кабинете в любое время.")
    assert shown_titles(page) == ["Оплата"]
    row = page.locator("table.tips tr.tip").first
    assert "render-error" not in row.inner_html()
    duration = preview_duration(page, row)
    src = row.locator("audio").get_attribute("src")
    assert src is not None
    fetched = page.request.get(f"{service.url}{src}")
    assert fetched.status == 200 and fetched.headers["content-type"] == "audio/wav"
    expected = wav_seconds(fetched.body())
    assert expected > 1.0
    assert abs(duration - expected) < 0.05

    # Two more, then the third moves up: the page and the API both say the new order.
    create_tip(page, "Доставка", "Доставка занимает от одного до трёх дней.")
    create_tip(page, "Скидки", "Скидки для постоянных клиентов.")
    assert shown_titles(page) == ["Оплата", "Доставка", "Скидки"]
    with page.expect_navigation():
        page.locator("tr.tip", has_text="Скидки").locator("button.move-up").click()
    assert shown_titles(page) == ["Оплата", "Скидки", "Доставка"]
    status, listed = api(service, "/api/v1/hold-tips?line=main", secret)
    assert status == 200
    assert [tip["title"] for tip in listed["items"]] == ["Оплата", "Скидки", "Доставка"]

    # Disabled: shown so, and the API agrees.
    with page.expect_navigation():
        page.locator("tr.tip", has_text="Доставка").locator("button.toggle").click()
    off = page.locator("tr.tip", has_text="Доставка")
    assert "off" in (off.get_attribute("class") or "")
    assert off.locator(".state").inner_text() == "Disabled"
    by_title = {tip["title"]: tip for tip in api(service, "/api/v1/hold-tips", secret)[1]["items"]}
    assert by_title["Доставка"]["enabled"] is False and by_title["Оплата"]["enabled"] is True

    # The edit view shows who changed what.
    page.locator("tr.tip", has_text="Доставка").locator("a.edit").click()
    page.wait_for_load_state()
    history = page.locator("ul.history").inner_text()
    assert "mila" in history and "disable" in history and "create" in history
    assert "enabled: True → False" in history

    page.goto(f"{service.url}/marketing")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "marketing.png"), full_page=True)
    assert (SHOTS / "marketing.png").stat().st_size > 1000


def test_a_survey_prompt_is_recorded_and_bad_files_are_refused(
    service: RingbackService, context: BrowserContext, tmp_path: Path,
) -> None:
    secret = token(service, "marketing")
    page = context.new_page()
    sign_in(page, service, "mila", "/marketing/prompts")
    question = page.locator("tr#survey\\.question-ru")
    synthetic = page.locator("tr#warning\\.balance-ru")
    assert "Synthetic" in synthetic.inner_text() and synthetic.locator("form").count() == 0
    spoken = preview_duration(page, question)
    assert spoken > 1.0

    clips_before = rows(service, "audio_clips")
    notes = tmp_path / "notes.wav"
    notes.write_text("not a recording\n" * 50)
    assert post_recording(page, question.locator("form.upload"), notes) == 422
    assert "The file was not accepted" in page.locator(".notice").inner_text()
    assert rows(service, "audio_clips") == clips_before
    assert rows(service, "prompt_recordings") == 0

    recording = tone_wav(tmp_path / "question.wav", 2.5)
    question = page.locator("tr#survey\\.question-ru")
    question.locator("input[type=file]").set_input_files(str(recording))
    with page.expect_navigation():
        question.locator("form.upload button").click()
    question = page.locator("tr#survey\\.question-ru")
    assert "question.wav" in question.locator(".recording-state").inner_text()
    assert abs(preview_duration(page, question) - 2.5) < 0.05
    status, prompts = api(service, "/api/v1/prompts", secret)
    recorded = next(p for p in prompts["items"]
                    if (p["prompt_id"], p["locale"]) == ("survey.question", "ru"))
    assert status == 200 and recorded["recording"]["source_name"] == "question.wav"
    assert rows(service, "prompt_recordings") == 1


def test_a_file_form_without_its_csrf_token_is_refused_and_changes_nothing(
    service: RingbackService, context: BrowserContext, tmp_path: Path,
) -> None:
    page = context.new_page()
    sign_in(page, service, "mila", "/marketing/prompts")
    recording = tone_wav(tmp_path / "goodbye.wav", 1.0)
    before = rows(service, "audio_clips"), rows(service, "prompt_recordings")
    form = page.locator("tr#survey\\.goodbye-en form.upload")
    form.locator("input[name=csrf]").evaluate("input => input.value = 'forged'")
    assert post_recording(page, form, recording) == 403
    assert "Form expired" in page.content()
    assert (rows(service, "audio_clips"), rows(service, "prompt_recordings")) == before


def test_a_50_mb_file_is_refused_in_the_page_and_nothing_is_stored(
    service: RingbackService, context: BrowserContext, tmp_path: Path,
) -> None:
    page = context.new_page()
    sign_in(page, service, "mila", "/marketing/prompts")
    huge = tmp_path / "huge.wav"
    with huge.open("wb") as out:
        out.truncate(50 * 1024 * 1024)
    before = rows(service, "audio_clips"), rows(service, "prompt_recordings")
    assert post_recording(page, page.locator("tr#survey\\.thanks-en form.upload"), huge) == 413
    assert "over the limit of 40 MB" in page.locator(".notice").inner_text()
    assert (rows(service, "audio_clips"), rows(service, "prompt_recordings")) == before


def test_a_russian_marketer_gets_russian_pages(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "vera", "/marketing")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.inner_text("h1") == "Подсказки на удержании"


def test_support_may_not_open_the_marketing_pages_or_api(
    service: RingbackService, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, service, "anna")
    for path in ("/marketing", "/marketing/prompts"):
        response = page.goto(f"{service.url}{path}")
        assert response is not None and response.status == 403
        assert "Your role may not open this page." in page.content()
    support = token(service, "support")
    for path in ("/api/v1/hold-tips", "/api/v1/prompts", "/api/v1/hold-lines"):
        status, body = api(service, path, support)
        assert status == 403 and body["error"]["code"] == "forbidden"
