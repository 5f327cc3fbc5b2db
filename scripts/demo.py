"""Demo of ringback's calls on the embedded defaults (SQLite, local peers on 127.0.0.1).

Starts Kamailio (registrar + proxy), a baresip softphone for the client, a local CRM receiver and
`ringback serve`; sends a signed `call.completed`: the softphone answers the survey call and
presses 2 (a low score); then a signed `balance.low`: it answers the warning call and presses 1
(the invoice again). Prints the timeline: event → call → key → task / invoice → CRM.

Everything it starts ends with it, on success, on failure, on Ctrl-C (SIGINT), SIGTERM and
SIGHUP: each peer runs in its own process group and is stopped (then killed) as a group, and its
temporary folder is removed. Only SIGKILL of the demo itself leaves the peers running. Its ports
are taken from 30000-31999: clear of ringback's default RTP range (20000-29999) and of the
kernel's ephemeral ports (32768 and up).
"""

import signal
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The lab harness doubles as the demo's peers.
from infra.settings import DEV_OUTBOUND_SECRET  # noqa: E402
from lab import ports  # noqa: E402
from lab.baresip import Baresip  # noqa: E402
from lab.crm_events import envelope  # noqa: E402
from lab.crm_receiver import CrmReceiver  # noqa: E402
from lab.kamailio import Kamailio  # noqa: E402
from lab.process import PeerError, tail  # noqa: E402
from lab.ringback import RingbackService  # noqa: E402

CLIENT = "79990000001"
SCORE = "2"
INVOICE_KEY = "1"  # the warning's menu: send the invoice again
COMPANY = "Acme"
STARTED = time.monotonic()
# Every port the peers take (SIP, RTP, HTTP, control sockets) comes from here.
ports.RANGE_START, ports.RANGE_END = 30000, 32000
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """The demo was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


def say(what: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {what}", flush=True)


def answer_and_press(phone: Baresip, key: str, wait_s: float, since: int, heard: str,
                     stopping: threading.Event) -> None:
    """The client: answers the next call, listens `wait_s`, presses `key`, waits for the end."""
    try:
        phone.wait_event("CALL_ESTABLISHED", 120.0, since)
        say(f"client's phone answered: {heard}")
        if stopping.wait(wait_s):
            return
        phone.send_digit(key)
        say(f"client pressed {key}")
        phone.wait_event("CALL_CLOSED", 60.0, since)
        if not stopping.is_set():
            say("the robot confirmed and hung up")
    except PeerError:
        if not stopping.is_set():  # the phone going away while the demo stops is no news
            raise


def client_answers(phone: Baresip, key: str, wait_s: float, heard: str,
                   stopping: threading.Event) -> threading.Thread:
    presser = threading.Thread(
        target=answer_and_press,
        args=(phone, key, wait_s, phone.events_so_far(), heard, stopping), daemon=True,
    )
    presser.start()
    return presser


def crm_hears(crm: CrmReceiver, kinds: tuple[str, ...]) -> None:
    for kind in kinds:
        received = crm.wait_for(kind, timeout=120)
        data = received.payload["data"]
        details = [f"{name} {data[name]}" for name in ("score", "key", "deadline", "balance")
                   if data.get(name) is not None]
        say(f"CRM received {kind} (signature verified: {received.verified}) "
            f"{', '.join(details)}")


def run(stack: ExitStack, workdir: Path, logs: dict[str, Path]) -> None:
    crm = CrmReceiver(DEV_OUTBOUND_SECRET).start()
    stack.callback(crm.stop)
    kam = Kamailio(workdir / "kamailio", users={"ringback": "secret", CLIENT: "clientpw"})
    stack.callback(kam.close)
    logs["kamailio"] = kam.log_path
    kam.start()
    phone = Baresip(kam, workdir / "baresip", user=CLIENT)
    stack.callback(phone.close)
    logs["baresip"] = phone.log_path
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
    stack.callback(service.close)
    stopping = threading.Event()
    stack.callback(stopping.set)  # unwound first: the presser stops before its peers
    logs["ringback"] = service.process.log_path
    phone.start()
    phone.wait_registered()
    say(f"Kamailio on {kam.domain}; the client's softphone is registered as {CLIENT}")
    service.start()
    say(f"ringback serve is up on {service.url} (SQLite in {service.workdir / 'data'})")
    greeting = service.survey_prompt("survey.greeting", COMPANY).duration_s
    presser = client_answers(phone, SCORE, greeting + 2.0,
                             "the robot greets and asks for a score", stopping)
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
    crm_hears(crm, ("survey.completed", "callback_task.created"))
    presser.join(timeout=60)

    # The warning: the balance is low; the client asks for the invoice again.
    values = {"balance": "1250.50", "currency": "USD"}
    before_menu = sum(service.prompt("balance_warning", prompt, COMPANY, values=values).duration_s
                      for prompt in ("warning.hello", "warning.balance"))
    presser = client_answers(phone, INVOICE_KEY, before_menu + 2.0,
                             "the robot speaks the balance and offers the menu", stopping)
    status, body = service.post_event(envelope("balance.low", {
        "client_id": "client-1", "phone": f"+{CLIENT}", "locale": "en",
        "timezone": "Europe/Moscow", **values,
    }))
    say(f"CRM sent a signed balance.low (1250.50 USD) → {status} {body}")
    crm_hears(crm, ("invoice.requested", "warning.delivered"))
    presser.join(timeout=60)


def main() -> int:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    logs: dict[str, Path] = {}
    with ExitStack() as stack:
        # Unwound last to first: the peers stop, then the folder with their logs goes.
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ringback-demo-")))
        try:
            run(stack, workdir, logs)
        except Stopped as exc:
            say(f"{exc}: stopping everything the demo started")
            return 128 + exc.signum
        except Exception as exc:
            say(f"the demo failed: {type(exc).__name__}: {exc}")
            for name, path in logs.items():
                print(f"--- last lines of the {name} log ---\n{tail(path, 20)}", flush=True)
            return 1
        finally:
            for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the clean-up short
                signal.signal(signum, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
