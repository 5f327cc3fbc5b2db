"""Never twice, never lost (issue 7) as a soak: N clients, K SIGKILLs, counted from a capture.

    .venv/bin/python -m benchmarks.never_twice_soak --calls 100 --kills 3
    .venv/bin/python -m benchmarks.never_twice_soak --calls 100 --kills 3 \\
        --database postgresql --instances 2

The peers are the end-to-end tests' own (lab, tests/crm_receiver.py): Kamailio; one sipp
UAS (``uas_survey_answer``) registered at Kamailio for every client's number, answering and
pressing ``--digit`` after the greeting; a CRM receiver checking signatures; dumpcap on the
callee's SIP port; and ``ringback serve`` (one instance on SQLite or PostgreSQL, or two on one
fresh PostgreSQL database) with the e2e settings: survey delay 2 s, calling window all day,
retry delay 1 s, at most 3 attempts.

For every client two signed ``call.completed`` events (the same data, two event ids) are POSTed
at the same moment, to two instances when there are two. While the calls run, ringback is
SIGKILLed ``--kills`` times (the instances in turn), each time once a random share of the
clients has a final outcome at the CRM, plus a random delay (all seeded), and started again at
once. At each kill the database is read for what the dead process leaves: the clients it was
calling, the clients whose answer was stored, and the calls it left up (answered, dialog
stored). When every job is final and the outbox is empty (or ``--timeout`` runs out) the capture
is stopped and the run is counted:

- from the capture (requests the callee received, retransmissions aside): dials (distinct
  Call-IDs), clients dialed more than once and whether a kill explains each redial, clients
  called again after their answer was stored, two calls up at once for one client, calls left
  up (ACKed, never a BYE), orphans hung up, peak INVITEs in any calendar second;
- from the CRM receiver: final outcomes per client (lost: none), ``survey.completed`` or a
  callback task twice for one client, any event id POSTed twice;
- from the database where nothing else knows: jobs created, when an answer was stored, clients
  dialed from two survey jobs.

One JSON object and a table go to stdout (and to ``--out``, with the ringback logs and the
capture). Exit status 1 if anything was duplicated or lost, ringback died on its own, or the run
did not finish.
Every process started here is stopped, and the temporary folder and database removed, on
success, failure and Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, create_engine, func, select
from sqlalchemy.pool import NullPool

from benchmarks.sip_load import _interrupts_as_exceptions, machine
from campaigns.models import CallAttempt, Job, JobStatus, OutboxEvent, OutboxStatus
from infra.settings import DEV_OUTBOUND_SECRET
from lab.capture import Capture
from lab.crm_events import call_completed, numbers, post_together
from lab.crm_receiver import CrmReceiver
from lab.databases import postgres_admin_url, temporary_postgres_database
from lab.kamailio import Kamailio
from lab.ports import allocate_ports
from lab.process import PeerError
from lab.ringback import RingbackService, survey_settings
from lab.sipp import Sipp

RESULTS = Path(__file__).resolve().parent / "results"
COMPANY = "Acme"
FINAL_EVENTS = ("survey.completed", "survey.unanswered")
POLL_S = 0.3
POST_BATCH = 100  # clients whose two events are POSTed together (2 threads each)


# --- the run's settings and plan -----------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="N clients, two racing call.completed each, K SIGKILLs of ringback; "
                    "dials, redials, duplicates and losses counted from a capture.")
    parser.add_argument("--calls", type=int, default=100, help="clients (one survey each)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs while calls run")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--instances", type=int, choices=(1, 2), default=1)
    parser.add_argument("--cps", type=float, default=5.0, help="calls_per_second (each)")
    parser.add_argument("--channels", type=int, default=20, help="channel_limit (shared)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--digit", default="2", help="the key the callee presses (score)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds from the first event until every job must be final")
    parser.add_argument("--quiet-s", type=float, default=3.0,
                        help="seconds to keep capturing after the end (late redials)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.instances == 2 and args.database != "postgresql":
        parser.error("--instances 2 needs --database postgresql (SQLite is for one instance)")
    if not 1 <= args.calls <= 9999:
        parser.error("--calls must be 1..9999")
    if args.kills < 0:
        parser.error("--kills must be >= 0")
    return args


@dataclass(frozen=True)
class PlannedKill:
    after_outcomes: int  # once this many clients have a final outcome at the CRM ...
    delay_s: float  # ... and this much later
    victim: int  # index of the instance


def plan_kills(rng: random.Random, calls: int, kills: int, instances: int) -> list[PlannedKill]:
    """Random moments while calls still run: after 5-80 % of the outcomes, plus 0-2 s; the
    instances take turns (from a random one)."""
    shares = sorted(rng.uniform(0.05, 0.8) for _ in range(kills))
    first = rng.randrange(instances)
    return [PlannedKill(max(1, round(share * calls)), rng.uniform(0.0, 2.0),
                        (first + n) % instances) for n, share in enumerate(shares)]


def midday_zone(now: datetime) -> str:
    """An Etc/GMT zone where it is about noon: the all-day calling window's one gap
    (23:59-00:00 local) stays hours away from the run."""
    hours = (12 - now.astimezone(UTC).hour + 11) % 24 - 11  # -11..12
    return "Etc/GMT" if hours == 0 else f"Etc/GMT{-hours:+d}"


def service_env(args: argparse.Namespace, kamailio: Kamailio, crm: CrmReceiver, name: str,
                database_url: str | None) -> dict[str, str]:
    """The e2e tests' settings (tests/integration/test_csat_e2e.py `service`), plus limits."""
    env = {
        **survey_settings(kamailio, company=COMPANY),
        "RINGBACK_CRM_URL": crm.url,
        "RINGBACK_SURVEY_MAX_ATTEMPTS": "3",
        "RINGBACK_CHANNEL_LIMIT": str(args.channels),
        "RINGBACK_CALLS_PER_SECOND": f"{args.cps:g}",
        "RINGBACK_INSTANCE_NAME": name,
    }
    if database_url is not None:
        env["RINGBACK_DATABASE_URL"] = database_url
    return env


# --- the database, read from outside -------------------------------------------------------------

class Database:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)

    def rows(self, statement: Executable) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(statement)]

    def count(self, statement: Executable) -> int:
        return int(self.rows(statement)[0][0] or 0)

    def close(self) -> None:
        self.engine.dispose()


def open_jobs(db: Database) -> int:
    return db.count(select(func.count()).select_from(Job).where(
        Job.status.in_([JobStatus.PENDING, JobStatus.DIALING])))


def pending_outbox(db: Database) -> int:
    return db.count(select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.status == OutboxStatus.PENDING))


def stored_answers(db: Database) -> dict[str, float]:
    """client id -> when its first answer was stored (epoch seconds)."""
    rows = db.rows(select(Job.client_id, func.min(CallAttempt.result_at))
                   .join(CallAttempt, CallAttempt.job_id == Job.id)
                   .where(CallAttempt.result.is_not(None)).group_by(Job.client_id))
    return {client: at.timestamp() for client, at in rows}


def calls_left_up(db: Database, instance: str) -> set[str]:
    """Call-IDs of the answered calls an instance's process holds (open attempt, dialog)."""
    rows = db.rows(select(CallAttempt.dialog)
                   .join(Job, (CallAttempt.job_id == Job.id) & (CallAttempt.number == Job.attempts))
                   .where(Job.status == JobStatus.DIALING, Job.lease_owner.like(f"{instance}/%"),
                          CallAttempt.ended_at.is_(None), CallAttempt.dialog.is_not(None)))
    return {str(dialog["call_id"]) for (dialog,) in rows if dialog}


def clients_held(db: Database, instance: str) -> set[str]:
    """Clients whose job an instance's process holds (claimed: dialing, ringing or talking)."""
    return {client for (client,) in db.rows(
        select(Job.client_id).where(Job.status == JobStatus.DIALING,
                                    Job.lease_owner.like(f"{instance}/%")))}


def claimed_at(db: Database) -> dict[str, float]:
    """Call-ID -> when its attempt was claimed (the dialing slot is at most one dispatch
    interval later): how late each INVITE left."""
    out: dict[str, float] = {}
    for call_id, dialog, started in db.rows(
            select(CallAttempt.call_id, CallAttempt.dialog, CallAttempt.started_at)):
        for known in (call_id, (dialog or {}).get("call_id")):
            if known:
                out[str(known)] = started.timestamp()
    return out


def jobs_by_status(db: Database) -> dict[str, int]:
    return {status: n for status, n in db.rows(
        select(Job.status, func.count()).group_by(Job.status))}


def clients_with_two_survey_jobs(db: Database) -> list[str]:
    """Clients with more than one survey job that was not skipped at intake or claim."""
    return [client for (client,) in db.rows(
        select(Job.client_id).where(Job.status != JobStatus.SKIPPED)
        .group_by(Job.client_id).having(func.count() > 1))]


def clients_dialed_from_two_jobs(db: Database) -> list[str]:
    return [client for (client,) in db.rows(
        select(Job.client_id).join(CallAttempt, CallAttempt.job_id == Job.id)
        .group_by(Job.client_id).having(func.count(func.distinct(Job.id)) > 1))]


def attempts_of(db: Database, clients: Iterable[str]) -> dict[str, list[str]]:
    """client -> "n: outcome (detail)" of each attempt, for the unexplained redials."""
    wanted = list(clients)
    if not wanted:
        return {}
    out: dict[str, list[str]] = collections.defaultdict(list)
    for client, number, outcome, detail in db.rows(
            select(Job.client_id, CallAttempt.number, CallAttempt.outcome, CallAttempt.detail)
            .join(CallAttempt, CallAttempt.job_id == Job.id)
            .where(Job.client_id.in_(wanted)).order_by(Job.client_id, CallAttempt.number)):
        out[client].append(f"{number}: {outcome} ({detail})")
    return dict(out)


# --- the capture ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SipRequest:
    at: float
    method: str
    call_id: str
    cseq: int
    to_user: str


def requests_received(capture: Capture, port: int) -> list[SipRequest]:
    """Every SIP request sent *to* `port`, first copies only (retransmissions dropped)."""
    argv = [
        capture.tshark_bin, "-n", "-r", str(capture.path), "-d", f"udp.port=={port},sip",
        "-Y", f"sip.Request-Line && udp.dstport == {port}", "-T", "fields", "-E",
        "separator=\t", "-e", "frame.time_epoch", "-e", "sip.Method", "-e", "sip.Call-ID",
        "-e", "sip.CSeq.seq", "-e", "sip.to.user",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise PeerError(f"tshark failed ({done.returncode}): {done.stderr[-2000:]}")
    seen: dict[tuple[str, str, int], SipRequest] = {}
    for line in done.stdout.splitlines():
        at, method, call_id, cseq, to_user = (line.split("\t") + [""] * 5)[:5]
        request = SipRequest(float(at), method, call_id, int(cseq or 0), to_user)
        seen.setdefault((method, call_id, request.cseq), request)
    return sorted(seen.values(), key=lambda r: r.at)


@dataclass
class Calls:
    """The callee's view: per Call-ID when it was INVITEd, ACKed and BYEd, and whom it was for."""

    invited: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    byes: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    number: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, requests: Iterable[SipRequest]) -> Calls:
        calls = cls()
        for r in requests:
            if r.method == "INVITE":
                calls.invited.setdefault(r.call_id, r.at)
                calls.number.setdefault(r.call_id, r.to_user)
            elif r.method == "ACK":
                calls.acked.setdefault(r.call_id, r.at)
            elif r.method == "BYE":
                calls.byes[r.call_id].append(r.at)
        return calls

    def per_number(self) -> dict[str, list[tuple[float, str]]]:
        """number -> [(INVITE time, Call-ID)] in time order."""
        out: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
        for call_id, at in self.invited.items():
            out[self.number[call_id]].append((at, call_id))
        return {number: sorted(calls) for number, calls in out.items()}

    def up(self, call_id: str) -> tuple[float, float] | None:
        """From the ACK to the first BYE (open-ended without one); None if never ACKed."""
        if call_id not in self.acked:
            return None
        byes = self.byes.get(call_id)
        return self.acked[call_id], min(byes) if byes else float("inf")


# --- the soak ------------------------------------------------------------------------------------

@dataclass
class Kill:
    instance: str
    at: float  # epoch, once the process was gone
    held: set[str]  # clients the dead process was calling (their jobs claimed by it)
    answered: set[str]  # clients whose answer was stored by then
    orphans: set[str]  # Call-IDs of the answered calls the dead process left up
    restart_s: float = 0.0


@dataclass
class Crash:
    instance: str
    at: float
    returncode: int | None


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path
    kamailio: Kamailio
    crm: CrmReceiver
    db: Database
    services: list[RingbackService]
    names: list[str]
    callee: Sipp
    capture: Capture
    clients: dict[str, str]  # number (digits) -> client id
    posted: collections.Counter[int] = field(default_factory=collections.Counter)
    kills: list[Kill] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    timed_out: bool = False

    def outcomes(self) -> set[str]:
        return {e.payload["data"]["client_id"] for e in self.crm.events if e.type in FINAL_EVENTS}

    def settled(self) -> bool:
        return open_jobs(self.db) == 0 and pending_outbox(self.db) == 0

    def kill(self, victim: int) -> None:
        svc, name = self.services[victim], self.names[victim]
        svc.kill()
        at = time.time()
        kill = Kill(name, at, clients_held(self.db, name), set(stored_answers(self.db)),
                    calls_left_up(self.db, name))
        svc.start()
        kill.restart_s = time.time() - at
        self.kills.append(kill)
        print(f"  kill {len(self.kills)}: {name} at +{at - self.started_at:.1f} s, holding "
              f"{len(kill.held)} clients ({len(kill.orphans)} calls up, "
              f"{len(kill.held & kill.answered)} answered), "
              f"{len(kill.answered)} answers stored in all, "
              f"back in {kill.restart_s:.1f} s", flush=True)

    def restart_the_dead(self) -> None:
        """A ringback that died on its own is a finding: noted, then started again."""
        for svc, name in zip(self.services, self.names, strict=True):
            if not svc.process.running():
                self.crashes.append(Crash(name, time.time(), svc.process.returncode))
                print(f"  {name} DIED on its own (exit {svc.process.returncode}); restarting",
                      flush=True)
                svc.start()


def post_events(soak: Soak, zone: str) -> None:
    """Two copies of each client's call.completed (two event ids), POSTed at one moment."""
    items = list(soak.clients.items())
    services = soak.services
    for first in range(0, len(items), POST_BATCH):
        posts: list[tuple[RingbackService, dict[str, Any]]] = []
        for number, client in items[first:first + POST_BATCH]:
            event = call_completed(phone=f"+{number}", client=client)
            event["data"]["timezone"] = zone
            twin = {**event, "id": f"evt-{uuid.uuid4()}"}
            posts += [(services[0], event), (services[1 % len(services)], twin)]
        soak.posted.update(post_together(posts))


def run(soak: Soak, plan: list[PlannedKill]) -> None:
    """Kill as planned while the calls run; return once everything is final (or timeout)."""
    args = soak.args
    pending = list(plan)
    due_at: float | None = None
    deadline = soak.started_at + args.timeout
    while True:
        soak.restart_the_dead()
        if pending:
            if due_at is None and len(soak.outcomes()) >= pending[0].after_outcomes:
                due_at = time.time() + pending[0].delay_s
            if due_at is not None and time.time() >= due_at:
                soak.kill(pending.pop(0).victim)
                due_at = None
        if soak.settled():  # nothing pending, nothing dialing, nothing left to POST
            break
        if time.time() >= deadline:
            soak.timed_out = True
            break
        time.sleep(POLL_S)
    soak.finished_at = time.time()
    time.sleep(args.quiet_s)  # a redial or a second POST would show up now


# --- counting ------------------------------------------------------------------------------------

def redials(soak: Soak, calls: Calls) -> tuple[dict[str, list[float]], list[str]]:
    """Clients dialed more than once (client -> INVITE times), and those a kill does not
    explain: a later dial is explained by a kill between it and the dial before, of the process
    that was calling the client, which had no stored answer then."""
    dialed: dict[str, list[float]] = {}
    unexplained: list[str] = []
    for number, invites in calls.per_number().items():
        if len(invites) < 2:
            continue
        client = soak.clients.get(number, number)
        times = [at for at, _ in invites]
        dialed[client] = times
        for before, after in itertools.pairwise(times):
            if not any(before < k.at < after and client in k.held and client not in k.answered
                       for k in soak.kills):
                unexplained.append(client)
                break
    return dialed, unexplained


def called_after_answer(soak: Soak, calls: Calls, answers: dict[str, float]) -> list[str]:
    late = []
    for number, invites in calls.per_number().items():
        client = soak.clients.get(number, number)
        stored = answers.get(client)
        if stored is not None and any(at > stored for at, _ in invites):
            late.append(client)
    return sorted(late)


def two_calls_at_once(soak: Soak, calls: Calls) -> list[str]:
    """Clients with two established calls overlapping (ACK to BYE)."""
    out = []
    for number, invites in calls.per_number().items():
        spans = sorted(s for _, call_id in invites if (s := calls.up(call_id)) is not None)
        if any(b[0] < a[1] for a, b in itertools.pairwise(spans)):
            out.append(soak.clients.get(number, number))
    return sorted(out)


def crm_duplicates(soak: Soak) -> dict[str, list[str]]:
    posts = collections.Counter(r.id for r in soak.crm.requests)
    per_client: dict[str, dict[str, set[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(set))
    for event in soak.crm.events:
        client = str(event.payload.get("data", {}).get("client_id"))
        per_client[event.type][client].add(event.id)
    finals: dict[str, set[str]] = collections.defaultdict(set)
    for kind in FINAL_EVENTS:
        for client, ids in per_client[kind].items():
            finals[client] |= ids

    def twice(ids: dict[str, set[str]]) -> list[str]:
        return sorted(client for client, seen in ids.items() if len(seen) > 1)

    return {
        "survey_completed_twice": twice(per_client["survey.completed"]),
        "final_outcome_twice": twice(finals),
        "callback_task_twice": twice(per_client["callback_task.created"]),
        "event_id_posted_twice": sorted(i for i, n in posts.items() if n > 1),
    }


def orphans_report(soak: Soak, calls: Calls) -> dict[str, Any]:
    left = hung_up = 0
    delays: list[float] = []
    for kill in soak.kills:
        for call_id in kill.orphans:
            byes = [at for at in calls.byes.get(call_id, []) if at >= kill.at]
            if byes:
                hung_up += 1
                delays.append(min(byes) - kill.at)
            else:
                left += 1
    return {"left_up_at_kills": sum(len(k.orphans) for k in soak.kills),
            "hung_up": hung_up, "not_hung_up": left,
            "bye_after_kill_max_s": round(max(delays), 2) if delays else None}


def dial_rate(invited: dict[str, float], claims: dict[str, float],
              cps: float) -> dict[str, Any]:
    """Peak INVITEs in a calendar second (and in any sliding second), that second's INVITEs,
    the gaps between consecutive INVITEs shorter than the budget's spacing (1 / cps), and how
    long after its claim each INVITE reached the callee."""
    times = sorted(invited.values())
    lags = sorted(at - claims[call_id] for call_id, at in invited.items() if call_id in claims)
    per_second = collections.Counter(int(at) for at in times)
    peak_second, peak = per_second.most_common(1)[0] if per_second else (0, 0)
    sliding = max((bisect.bisect_left(times, at + 1.0) - n for n, at in enumerate(times)),
                  default=0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "peak_invites_per_second": peak,
        "peak_second_offsets_ms": [round((at - peak_second) * 1000) for at in times
                                   if int(at) == peak_second],
        "peak_second_claim_to_invite_ms": [
            round((at - claims[call_id]) * 1000) if call_id in claims else None
            for call_id, at in sorted(invited.items(), key=lambda item: item[1])
            if int(at) == peak_second],
        "peak_invites_in_any_1s_window": sliding,
        "gaps_under_spacing": sum(1 for gap in gaps if gap < 1.0 / cps - 0.001),
        "min_gap_ms": round(min(gaps) * 1000, 1) if gaps else None,
        "claim_to_invite_ms": {"matched": len(lags), **({
            "p50": round(lags[len(lags) // 2] * 1000), "p95": round(
                lags[int(0.95 * (len(lags) - 1))] * 1000), "max": round(lags[-1] * 1000)}
            if lags else {})},
    }


def log_findings(soak: Soak) -> dict[str, int]:
    errors = tracebacks = 0
    for svc in soak.services:
        text = svc.log_text()
        errors += len(re.findall(r"^\S+ \S+ (?:ERROR|CRITICAL) ", text, re.MULTILINE))
        tracebacks += text.count("Traceback (most recent call last)")
    return {"error_lines": errors, "tracebacks": tracebacks}


def count(soak: Soak) -> dict[str, Any]:
    port = soak.callee.port
    calls = Calls.of(requests_received(soak.capture, port))
    answers = stored_answers(soak.db)
    dialed, unexplained = redials(soak, calls)
    outcomes = soak.outcomes()
    statuses = jobs_by_status(soak.db)
    kinds = collections.Counter(e.type for e in soak.crm.events)
    duplicates: dict[str, list[str]] = {
        "called_after_answer_stored": called_after_answer(soak, calls, answers),
        "two_survey_jobs": sorted(clients_with_two_survey_jobs(soak.db)),
        "dialed_from_two_jobs": sorted(clients_dialed_from_two_jobs(soak.db)),
        "two_calls_at_once": two_calls_at_once(soak, calls),
        **crm_duplicates(soak),
    }
    lost = sorted(set(soak.clients.values()) - outcomes)
    established = set(calls.acked)
    return {
        "events_posted": sum(soak.posted.values()), "http_statuses": dict(soak.posted),
        "jobs": sum(statuses.values()), "jobs_by_status": statuses,
        "dials": len(calls.invited), "calls_established": len(established),
        "clients_dialed": len(calls.per_number()),
        "redials": len(dialed), "redials_explained_by_kills": len(dialed) - len(unexplained),
        "redials_unexplained": {c: attempts_of(soak.db, [c]).get(c, []) for c in unexplained},
        "answers_stored": len(answers),
        "duplicates": {name: len(found) for name, found in duplicates.items()},
        "duplicate_clients": {name: found[:20] for name, found in duplicates.items() if found},
        "lost": len(lost), "lost_clients": lost[:20],
        "final_outcomes": len(outcomes),
        "final_outcomes_by_type": {kind: kinds[kind] for kind in FINAL_EVENTS},
        "crm_events": dict(kinds),
        "crm_unverified": sum(1 for r in soak.crm.requests if not r.verified),
        "orphans": orphans_report(soak, calls),
        "calls_never_hung_up": sum(1 for c in established if not calls.byes.get(c)),
        **dial_rate(calls.invited, claimed_at(soak.db), soak.args.cps), "cps": soak.args.cps,
        "kills": [{"instance": k.instance, "at_s": round(k.at - soak.started_at, 1),
                   "clients_held": len(k.held), "calls_left_up": len(k.orphans),
                   "held_with_answer_stored": len(k.held & k.answered),
                   "answers_stored": len(k.answered),
                   "restart_s": round(k.restart_s, 1)} for k in soak.kills],
        "crashes": [asdict(c) for c in soak.crashes],
        "ringback_log": log_findings(soak),
        "timed_out": soak.timed_out,
        "duration_s": round(soak.finished_at - soak.started_at, 1),
    }


def failed(result: dict[str, Any]) -> bool:
    return bool(any(result["duplicates"].values()) or result["lost"] or result["crashes"]
                or result["timed_out"])


# --- the report ----------------------------------------------------------------------------------

def table(result: dict[str, Any]) -> str:
    run = result["run"]
    dup = result["duplicates"]
    orphans = result["orphans"]
    rows = [
        ("clients / kills", f"{run['calls']} / {len(result['kills'])} of {run['kills']}"),
        ("database / instances", f"{run['database']} / {run['instances']}"),
        ("events POSTed (HTTP statuses)", f"{result['events_posted']} {result['http_statuses']}"),
        ("jobs created (by status)", f"{result['jobs']} {result['jobs_by_status']}"),
        ("dials (distinct INVITE Call-IDs)", result["dials"]),
        ("clients dialed", result["clients_dialed"]),
        ("redials (clients dialed > once)", result["redials"]),
        ("  explained by a kill before the answer", result["redials_explained_by_kills"]),
        ("clients never dialed", run["calls"] - result["clients_dialed"]),
        ("final outcomes at the CRM", f"{result['final_outcomes']} "
                                      f"{result['final_outcomes_by_type']}"),
        ("lost (no final outcome)", result["lost"]),
        *((f"duplicate: {name.replace('_', ' ')}", n) for name, n in dup.items()),
        ("orphans left up at kills / hung up", f"{orphans['left_up_at_kills']} / "
                                               f"{orphans['hung_up']}"),
        ("calls ACKed and never hung up", result["calls_never_hung_up"]),
        ("peak INVITEs in one second / cps", f"{result['peak_invites_per_second']} / "
                                             f"{result['cps']:g} (any 1 s window: "
                                             f"{result['peak_invites_in_any_1s_window']})"),
        ("INVITE gaps under 1/cps (min gap)", f"{result['gaps_under_spacing']} "
                                              f"({result['min_gap_ms']} ms)"),
        ("claim → INVITE at callee p50 / p95 / max", " / ".join(
            str(result["claim_to_invite_ms"].get(k, "—")) for k in ("p50", "p95", "max"))
            + " ms"),
        ("ringback died on its own", len(result["crashes"])),
        ("ringback log ERROR lines / tracebacks", f"{result['ringback_log']['error_lines']} / "
                                                  f"{result['ringback_log']['tracebacks']}"),
        ("duration / load average at start, end", f"{result['duration_s']} s / "
                                                  f"{run['load_start']} → {run['load_end']}"),
        ("verdict", "FAIL" if failed(result) else "ok"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def log_excerpt(svc: RingbackService, name: str, lines: int = 60) -> str:
    text = svc.log_text().splitlines()
    marked = [line for line in text if re.search(r" (ERROR|CRITICAL|WARNING) |Traceback", line)]
    return (f"===== {name}: ERROR/WARNING lines (last {lines}) =====\n"
            + "\n".join(marked[-lines:])
            + f"\n===== {name}: last {lines} lines =====\n" + "\n".join(text[-lines:]))


def log_on_error(svc: RingbackService, name: str) -> Callable[..., bool]:
    """An exit callback: the log excerpt on stderr if the run ends with an exception."""
    def show(exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is not None:
            print(log_excerpt(svc, name), file=sys.stderr)
        return False
    return show


def save(soak: Soak, result: dict[str, Any], report: str, out: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out / f"never_twice_soak-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result, indent=2, default=str))
    (folder / "table.txt").write_text(f"{' '.join(sys.argv)}\n\n{report}\n")
    for svc, name in zip(soak.services, soak.names, strict=True):
        shutil.copy(svc.process.log_path, folder / f"{name}.log")
    shutil.copy(soak.capture.path, folder / "callee-sip.pcapng")
    return folder


# --- setup and teardown --------------------------------------------------------------------------

@contextlib.contextmanager
def database_url(args: argparse.Namespace) -> Iterator[str | None]:
    if args.database == "postgresql":
        with temporary_postgres_database(postgres_admin_url()) as url:
            yield url
    else:
        yield None  # ringback's own SQLite file in its data dir


def start_services(stack: contextlib.ExitStack, args: argparse.Namespace, workdir: Path,
                   kamailio: Kamailio, crm: CrmReceiver, url: str | None,
                   ) -> tuple[list[RingbackService], list[str]]:
    services, names = [], []
    for n in range(args.instances):
        name = f"soak-{n + 1}"
        rtp = allocate_ports(2 * args.channels + 4)  # RingbackService's own block: 19 calls
        stack.callback(rtp.release)
        env = service_env(args, kamailio, crm, name, url)
        env.update(RINGBACK_RTP_PORT_MIN=str(rtp[0]), RINGBACK_RTP_PORT_MAX=str(rtp.last))
        svc = RingbackService(workdir / name, env)
        stack.callback(svc.close)
        stack.push(log_on_error(svc, name))
        services.append(svc.start())
        names.append(name)
    return services, names


def start_callee(stack: contextlib.ExitStack, args: argparse.Namespace, workdir: Path,
                 kamailio: Kamailio, svc: RingbackService, digits: list[str]) -> Sipp:
    """One sipp UAS answering every client's number; presses the key after the greeting."""
    pause_ms = int((svc.survey_prompt("survey.greeting", COMPANY).duration_s + 2.5) * 1000)
    callee = Sipp("uas_survey_answer", workdir / "callee", service="callee",
                  dtmf_digit=args.digit, template={"PAUSE_MS": str(pause_ms)})
    stack.callback(callee.close)
    callee.start()
    for number in digits:
        kamailio.add_contact(number, callee.contact)
    return callee


def soak_once(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[Soak, dict[str, Any]]:
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="never-twice-")))
    url = stack.enter_context(database_url(args))
    kamailio = Kamailio(workdir / "kamailio", debug=1)
    stack.callback(kamailio.close)
    kamailio.start()
    crm = CrmReceiver(DEV_OUTBOUND_SECRET).start()
    stack.callback(crm.stop)
    services, names = start_services(stack, args, workdir, kamailio, crm, url)
    db = Database(url or f"sqlite:///{services[0].database}")
    stack.callback(db.close)
    digits = numbers(args.calls)
    callee = start_callee(stack, args, workdir, kamailio, services[0], digits)
    capture = Capture((callee.port, callee.port), workdir / "capture")
    stack.callback(capture.close)
    capture.start()
    soak = Soak(args, workdir, kamailio, crm, db, services, names, callee, capture,
                clients={number: f"c-{n:04d}" for n, number in enumerate(digits)})
    load_start = load_average()
    soak.started_at = time.time()
    post_events(soak, midday_zone(datetime.now(UTC)))
    run(soak, plan_kills(random.Random(args.seed), args.calls, args.kills, args.instances))
    load_end = load_average()
    capture.stop()
    result = {"run": {"calls": args.calls, "kills": args.kills, "database": args.database,
                      "instances": args.instances, "cps": args.cps, "channels": args.channels,
                      "seed": args.seed, "digit": args.digit,
                      "date": datetime.now(UTC).isoformat(timespec="seconds"),
                      "load_start": load_start, "load_end": load_end, "machine": machine()},
              **count(soak)}
    return soak, result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with _interrupts_as_exceptions(), contextlib.ExitStack() as stack:
        soak, result = soak_once(args, stack)
        report = table(result)
        print(json.dumps(result, default=str))
        print()
        print(report)
        folder = save(soak, result, report, args.out)
        print(f"\nresult and ringback logs in {folder}")
        if failed(result):
            for svc, name in zip(soak.services, soak.names, strict=True):
                print(log_excerpt(svc, name), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
