"""A recorded voice end to end: marketing uploads a recording of the survey question through the
API, then a real survey call (`ringback serve` + Kamailio + sipp) plays it — the audio captured
on the wire is the uploaded file after conversion (loudness, 8 kHz, G.711)."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile

from audio import g711
from audio.g711 import Law
from audio.upload import decode_upload
from lab.crm_events import call_completed
from lab.crm_receiver import CrmReceiver
from lab.kamailio import Kamailio
from lab.ringback import RingbackService
from tests.conftest import COMPANY, CaptureFactory, ServiceFactory, SippFactory
from tests.integration.test_csat_e2e import client_phone, sent_audio, token

pytestmark = pytest.mark.peers

QUESTION = "survey.question"
RATE = 44_100


def recording() -> bytes:
    """A 4 s, 44.1 kHz stereo float WAV that sounds like nothing espeak says: a rising
    chirp with a syllable-like envelope, a different one in each channel."""
    t = np.arange(4 * RATE) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    left = np.sin(2 * np.pi * (300 * t + 150 * t**2)) * envelope * 0.3
    right = np.sin(2 * np.pi * (450 * t + 100 * t**2)) * envelope * 0.2
    out = io.BytesIO()
    soundfile.write(out, np.stack([left, right], axis=1), RATE, format="WAV", subtype="FLOAT")
    return out.getvalue()


def upload(svc: RingbackService, locale: str, data: bytes) -> httpx.Response:
    return httpx.put(
        f"{svc.url}/api/v1/prompts/{QUESTION}/{locale}/recording",
        headers={"authorization": f"Bearer {token(svc, 'marketing')}"},
        files={"file": ("question.wav", data, "audio/wav")}, timeout=30)


def normalised_peak(heard: np.ndarray, sent: np.ndarray) -> float:
    """The best normalised cross-correlation of `sent` against any stretch of `heard`."""
    heard, sent = heard.astype(np.float64), sent.astype(np.float64)
    n = len(sent)
    correlation = np.correlate(heard, sent, mode="valid")
    energy = np.sqrt(np.convolve(heard**2, np.ones(n), mode="valid"))
    return float(np.max(correlation / (energy * np.linalg.norm(sent) + 1e-9)))


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_a_survey_call_plays_the_uploaded_recording(
    service: ServiceFactory, kamailio: Kamailio, sipp: SippFactory, crm: CrmReceiver,
    capture: CaptureFactory, locale: str,
) -> None:
    svc = service()
    data = recording()
    uploaded = upload(svc, locale, data)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["recording"]["duration_s"] == pytest.approx(4.0, abs=0.01)

    greeting = svc.survey_prompt("survey.greeting", COMPANY, locale).duration_s
    # The phone presses 3 s into the question: what it heard before is the recording.
    phone = client_phone(sipp, kamailio, "uas_survey_answer", dtmf_digit="4", calls=1,
                         template={"PAUSE_MS": str(int((greeting + 3.0) * 1000))})
    cap = capture(svc.rtp_range)
    status, body = svc.post_event(call_completed(locale=locale))
    assert status == 202, body
    completed = crm.wait_for("survey.completed", timeout=60)
    assert completed.payload["data"]["score"] == 4
    assert phone.wait(20) == 0, phone.describe()
    cap.stop()

    # The uploaded file after conversion, made here by the same library the service uses.
    converted = np.frombuffer(decode_upload(data, "question.wav").pcm16, dtype="<i2")
    sent = sent_audio(svc, cap)
    heard = g711.decode(sent, Law.ULAW)
    assert normalised_peak(heard, converted[8000:16000]) > 0.95  # second 1..2 of the file
    assert g711.encode(converted[:16000], Law.ULAW) in sent  # and byte for byte
    # The speech it replaced was not sent.
    spoken = svc.survey_prompt(QUESTION, COMPANY, locale).ulaw
    assert spoken[:4000] not in sent
