"""Demo of the CSAT loop on the embedded defaults (SQLite, local peers on 127.0.0.1).

Starts Kamailio (registrar + proxy), a baresip softphone for the client, a local CRM receiver and
`ringback serve`; sends a signed `call.completed`; the softphone answers the survey call and
presses 2 (a low score); prints the timeline: event → call → score → task → CRM.
"""

import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The lab harness doubles as the demo's peers.
from infra.settings import DEV_OUTBOUND_SECRET  # noqa: E402
from tests.crm_receiver import CrmReceiver  # noqa: E402
from tests.peers.baresip import Baresip  # noqa: E402
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ringback import RingbackService  # noqa: E402

CLIENT = "79990000001"
SCORE = "2"
COMPANY = "Acme"
STARTED = time.monotonic()


def say(what: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {what}", flush=True)


def answer_and_score(phone: Baresip, wait_s: float) -> None:
    phone.wait_event("CALL_ESTABLISHED", 120.0)
    say("client's phone answered: the robot greets and asks for a score")
    threading.Event().wait(wait_s)
    phone.send_digit(SCORE)
    say(f"client pressed {SCORE}")
    phone.wait_event("CALL_CLOSED", 60.0)
    say("the robot thanked the client and hung up")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ringback-demo-"))
    crm = CrmReceiver(DEV_OUTBOUND_SECRET).start()
    with Kamailio(workdir / "kamailio", users={"ringback": "secret", CLIENT: "clientpw"}) as kam:
        kam.start()
        phone = Baresip(kam, workdir / "baresip", user=CLIENT)
        service = RingbackService(workdir / "ringback", {
            "RINGBACK_SIP_REGISTRAR": kam.domain,
            "RINGBACK_SIP_USER": "ringback",
            "RINGBACK_SIP_PASSWORD": "secret",
            "RINGBACK_SIP_DIAL_TEMPLATE": "{digits}",
            "RINGBACK_CRM_URL": crm.url,
            "RINGBACK_COMPANY_NAME": COMPANY,
            "RINGBACK_DEFAULT_LOCALE": "en",
            "RINGBACK_SURVEY_DELAY_S": "3",
            "RINGBACK_CALLING_WINDOW_HOURS": "mon-sun 00:00-23:59",
        })
        try:
            phone.start()
            phone.wait_registered()
            say(f"Kamailio on {kam.domain}; the client's softphone is registered as {CLIENT}")
            service.start()
            say(f"ringback serve is up on {service.url} (SQLite in {service.workdir / 'data'})")
            presser = threading.Thread(
                target=answer_and_score,
                args=(phone, service.survey_prompt("survey.greeting", COMPANY).duration_s + 2.0),
                daemon=True,
            )
            presser.start()
            ended = datetime.now(UTC) - timedelta(seconds=1)
            event = {
                "id": f"evt-{uuid.uuid4()}", "type": "call.completed",
                "occurred_at": ended.isoformat(),
                "data": {"call_id": "support-call-42", "client_id": "client-1",
                         "phone": f"+{CLIENT}", "ended_at": ended.isoformat(),
                         "duration_s": 240, "agent_id": "agent-7", "locale": "en",
                         "timezone": "Europe/Moscow"},
            }
            status, body = service.post_event(event)
            say(f"CRM sent a signed call.completed → {status} {body}")
            say("survey call due in 3 s (RINGBACK_SURVEY_DELAY_S; 30 min in production)")
            for kind in ("survey.completed", "callback_task.created"):
                received = crm.wait_for(kind, timeout=120)
                data = received.payload["data"]
                detail = f"score {data['score']}" if "score" in data else ""
                if kind == "callback_task.created":
                    detail += f", deadline {data['deadline']}"
                say(f"CRM received {kind} (signature verified: {received.verified}) {detail}")
            presser.join(timeout=60)
            return 0
        finally:
            service.close()
            phone.close()
            crm.stop()


if __name__ == "__main__":
    sys.exit(main())
