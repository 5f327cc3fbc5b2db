"""Backlog benchmark: the service with a million pending jobs, against the same service empty.

    .venv/bin/python -m benchmarks.backlog [--database sqlite|postgres] [--jobs 1000000]
        [--idle 30] [--duration 10] [--rate 100] [--rate-duration 30]

1. **Fill**: a fresh database (a SQLite file in a temporary directory, or a throw-away database
   on the local PostgreSQL server, see ``lab/databases.py``), migrated, then ``--jobs`` pending
   jobs written with Core bulk inserts: kinds ``survey`` and ``balance_warning`` alternating,
   each its own client and phone, ``not_before`` spread evenly at random over the next 7 days
   (so about one job a second falls due while the benchmark runs). PostgreSQL gets a
   ``VACUUM ANALYZE`` afterwards (what autovacuum would do within a minute); SQLite nothing.
2. **Explain**: one claim of the dispatcher (``Dispatcher._claim``) runs inside a transaction
   that is rolled back; each ``SELECT`` it issued is run again under ``EXPLAIN ANALYZE``
   (PostgreSQL) or ``EXPLAIN QUERY PLAN`` and timed (SQLite).
3. **Serve**, twice: on an empty database and on the filled one, ringback's app runs in its own
   process as in ``benchmarks.webhook_load`` (``benchmarks.webhook_bare_app real``: uvicorn, no-op
   telephony backend, survey delay a week) with the calling window open all day, so the jobs
   that fall due are claimed (and fail at once: nobody is dialed). For each:
   - ``--idle`` s with no traffic, then the load generator of ``benchmarks.webhook_load`` (its
     own process, once per phase): ``--warmup`` events closed-loop, then ``--rate-duration`` s
     open-loop at ``--rate`` events/s (p50/p99 from each event's due time), then ``--duration``
     s closed-loop throughput with ``--concurrency`` connections;
   - the scheduler ticks' durations from ``ringback_tick_seconds{tick}`` on ``/metrics``, read
     after each phase, so each phase has its own (p50/p99 interpolated inside the histogram's
     buckets, as PromQL's ``histogram_quantile`` does; the mean is exact);
   - the server's RSS every 0.5 s, from start to stop.

The markdown table goes to stdout and, with the raw JSON and the server logs, to
``benchmarks/results/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, insert, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.webhook_load import (
    RESULTS,
    _clean_env,
    _stop,
    _wait_healthy,
    free_port,
)

WEEK = timedelta(days=7)
KINDS = ("survey", "balance_warning")
BATCH = 20_000
RSS_EVERY_S = 0.5
PHASES = ("warmup", "rate", "throughput")


# --- the backlog ---------------------------------------------------------------------------------


def _rows(first: int, count: int, now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for n in range(first, first + count):
        not_before = now + WEEK * rng.random()
        rows.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "kind": KINDS[n % 2],
            "status": "pending",
            "source_event_id": f"backlog-{n}",
            "client_id": f"backlog-client-{n}",
            "phone": f"+7998{n:07d}",
            "timezone": "Europe/Moscow",
            "locale": "ru",
            "context": {"call_id": f"backlog-call-{n}", "agent_id": f"agent-{n % 40}",
                        "queue": "support", "ended_at": now.isoformat(timespec="seconds"),
                        "duration_s": 95.0, "timezone_source": "event"},
            "due_at": not_before,
            "not_before": not_before,
            "not_after": not_before + WEEK,
            "attempts": 0,
            "max_attempts": 3,
            "lease_owner": None,
            "lease_expires_at": None,
            "final_reason": None,
            "created_at": now,
            "updated_at": now,
        })
    return rows


def fill(url: str, jobs: int, seed: int = 7) -> dict[str, Any]:
    """Migrate `url` and write `jobs` pending jobs; how long it took."""
    from campaigns.models import Job
    from infra.db import make_engine
    from infra.migrate import upgrade

    t0 = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    statement = insert(Job)
    try:
        for first in range(0, jobs, BATCH):
            with engine.begin() as connection:
                connection.execute(statement, _rows(first, min(BATCH, jobs - first), now, rng))
        filled = time.perf_counter() - t0
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM ANALYZE jobs"))
    finally:
        engine.dispose()
    return {"jobs": jobs, "insert_s": round(filled, 1),
            "total_s": round(time.perf_counter() - t0, 1)}


# --- the claim's queries -------------------------------------------------------------------------


def _sqlite_begins_itself(engine: Engine) -> None:
    """pysqlite emits no BEGIN of its own before a SAVEPOINT, and releasing a SAVEPOINT outside
    a transaction commits it: SQLAlchemy's recipe, the driver's transactions off, BEGIN ours."""

    def no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    event.listen(engine, "connect", no_driver_transactions)
    event.listen(engine, "begin", begin)


@contextlib.contextmanager
def _rolled_back(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions whose commits stay inside one outer transaction, rolled back at the end."""
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            yield sessionmaker(connection, join_transaction_mode="create_savepoint",
                               expire_on_commit=False)
        finally:
            outer.rollback()


def explain_claim(url: str) -> list[dict[str, Any]]:
    """Run one real claim (rolled back), then each SELECT it issued under EXPLAIN."""
    from api.app import build_calendar, build_policy
    from benchmarks.webhook_bare_app import NoopBackend
    from campaigns.calling_window import CallingWindow
    from campaigns.dispatcher import Dispatcher, DispatchLimits
    from campaigns.surveys import Surveys
    from infra.db import make_engine, utcnow
    from infra.settings import Settings

    settings = Settings(_env_file=None, calling_window_hours="mon-sun 00:00-23:59")
    calendar = build_calendar(settings)
    window = CallingWindow.from_settings(calendar, settings.calling_window_hours)
    surveys = Surveys(build_policy(settings), window, calendar, utcnow)
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _sqlite_begins_itself(engine)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any,
                _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    results: list[dict[str, Any]] = []
    try:
        for attempt in ("cold", "warm"):  # the first one compiles the statements
            seen.clear()
            with _rolled_back(engine) as sessions:
                dispatcher = Dispatcher(
                    sessions, surveys, NoopBackend(), instance="backlog-explain",
                    limits=DispatchLimits(), params={}, clock=utcnow)
                event.listen(engine, "before_cursor_execute", capture)
                try:
                    t0 = time.perf_counter()
                    claimed = dispatcher._claim(DispatchLimits().channels)
                    claim_ms = (time.perf_counter() - t0) * 1000
                finally:
                    event.remove(engine, "before_cursor_execute", capture)
            results.append({"what": f"one claim, {attempt} ({len(claimed)} claimed, "
                            f"{len(seen)} SELECTs, rolled back)", "ms": round(claim_ms, 2)})
        postgres = engine.dialect.name == "postgresql"
        distinct = {statement: parameters for statement, parameters in seen}
        for statement, parameters in distinct.items():
            with engine.connect() as connection:
                raw = connection.connection.dbapi_connection
                assert raw is not None
                cursor = raw.cursor()
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
                cursor.execute(prefix + statement, parameters)
                plan = [" ".join(str(c) for c in row) for row in cursor.fetchall()]
                t0 = time.perf_counter()
                cursor.execute(statement, parameters)
                cursor.fetchall()
                ms = (time.perf_counter() - t0) * 1000
                connection.rollback()
            results.append({"what": " ".join(statement.split())[:160], "ms": round(ms, 2),
                            "plan": plan})
    finally:
        engine.dispose()
    return results


# --- the server ----------------------------------------------------------------------------------


class RssSampler:
    """The server's RSS every `RSS_EVERY_S`, in a thread, until stopped."""

    def __init__(self, pid: int) -> None:
        import psutil  # type: ignore[import-untyped]

        self._process = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                rss = self._process.memory_info().rss / 1e6
                self.samples.append((round(time.monotonic() - self._t0, 1), round(rss, 1)))
            self._stop.wait(RSS_EVERY_S)

    def now(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def tick_histograms(url: str) -> dict[str, dict[str, Any]]:
    """`ringback_tick_seconds` from /metrics: per tick, count, sum and cumulative buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        body = response.read().decode()
    ticks: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(body):
        if family.name != "ringback_tick_seconds":
            continue
        for sample in family.samples:
            tick = ticks.setdefault(sample.labels["tick"], {"buckets": {}})
            if sample.name.endswith("_bucket"):
                tick["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_count"):
                tick["count"] = sample.value
            elif sample.name.endswith("_sum"):
                tick["sum"] = sample.value
    return ticks


def _minus(later: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    if earlier is None:
        return later
    return {"count": later["count"] - earlier["count"], "sum": later["sum"] - earlier["sum"],
            "buckets": {le: n - earlier["buckets"].get(le, 0)
                        for le, n in later["buckets"].items()}}


def quantile(histogram: dict[str, Any], q: float) -> float | None:
    """`histogram_quantile`: linear inside the bucket the rank falls in (seconds)."""
    total = float(histogram.get("count", 0))
    if not total:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    buckets: dict[float, float] = histogram["buckets"]
    for le, cumulative in sorted(buckets.items()):
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return lower


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def tick_summary(histogram: dict[str, Any]) -> dict[str, Any]:
    count = int(histogram.get("count", 0))
    ms = _ms
    return {"count": count, "mean_ms": ms(histogram["sum"] / count) if count else None,
            "p50_ms": ms(quantile(histogram, 0.50)), "p99_ms": ms(quantile(histogram, 0.99))}


def _generate(label: str, url: str, pid: int, args: argparse.Namespace, workdir: Path,
              run: str, phase: str) -> dict[str, Any]:
    """One run of `benchmarks.webhook_load`'s generator in its own process, for one phase: the
    warm-up, the open-loop rate or the closed-loop throughput."""
    from infra.settings import DEV_WEBHOOK_SECRET

    rate = phase == "rate"
    spec = {
        "server": label, "url": url, "run": f"{run}-{label}-{phase}",
        "secret": DEV_WEBHOOK_SECRET, "concurrency": args.concurrency,
        "warmup": args.warmup if phase == "warmup" else 0,
        "duration": args.duration if phase == "throughput" else 0.0,
        "max_rps": args.max_rps, "rates": [str(args.rate)] if rate else [],
        "rate_duration": args.rate_duration, "bare_rps": None, "server_pid": pid,
        # Each phase its own phones (+7999…): none is skipped as surveyed by an earlier one.
        "first": PHASES.index(phase) * 1_000_000,
    }
    out = workdir / f"{label}-{phase}-generator.json"
    budget = 300.0 + args.duration + args.rate_duration + 60.0
    generator = subprocess.run(
        [sys.executable, "-m", "benchmarks.webhook_load", "--generate", json.dumps(spec),
         "--generate-out", str(out)],
        cwd=workdir, env=_clean_env(), timeout=budget, check=False)
    if generator.returncode != 0:
        raise RuntimeError(f"load generator failed with {generator.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    if phase == "warmup":
        return dict(result["warmup"])
    return dict(result["rates"][0] if rate else result["throughput"])


def serve_and_load(label: str, database_url: str, args: argparse.Namespace, workdir: Path,
                   run: str) -> dict[str, Any]:
    """Idle, a warm-up, `--rate` events/s, then closed-loop throughput; /metrics after each."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = workdir / f"{label}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**_clean_env(), "RINGBACK_DATABASE_URL": database_url,
           "RINGBACK_CALLING_WINDOW_HOURS": "mon-sun 00:00-23:59"}
    command = [sys.executable, "-m", "benchmarks.webhook_bare_app", "real", "--port", str(port),
               "--data-dir", str(data_dir), "--log-level", args.log_level]
    log = workdir / f"{label}-server.log"
    result: dict[str, Any] = {"label": label}
    scrapes: dict[str, dict[str, dict[str, Any]]] = {}
    with log.open("wb") as log_file:
        server = subprocess.Popen(command, cwd=workdir, env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
        rss = RssSampler(server.pid)
        try:
            _wait_healthy(url, server, log, timeout=120.0)
            result["rss_started_mb"] = rss.now()
            result["load_average_start"] = os.getloadavg()
            time.sleep(args.idle)
            scrapes["idle"] = tick_histograms(url)
            result["rss_after_idle_mb"] = rss.now()
            result["warmup"] = _generate(label, url, server.pid, args, workdir, run, "warmup")
            scrapes["warmup"] = tick_histograms(url)
            result["rate"] = _generate(label, url, server.pid, args, workdir, run, "rate")
            scrapes["rate"] = tick_histograms(url)
            result["rss_after_rate_mb"] = rss.now()
            result["throughput"] = _generate(label, url, server.pid, args, workdir, run,
                                             "throughput")
            scrapes["throughput"] = tick_histograms(url)
            result["rss_end_mb"] = rss.now()
            result["load_average_end"] = os.getloadavg()
        finally:
            _stop(server)
            rss.stop()
    result["server_exit"] = server.returncode
    before: dict[str, dict[str, Any]] = {}
    result["ticks"] = {}
    for phase, scraped in scrapes.items():  # each phase's own ticks: the difference
        result["ticks"][phase] = {name: tick_summary(_minus(h, before.get(name)))
                                  for name, h in scraped.items()}
        before = scraped
    result["rss_peak_mb"] = max((mb for _, mb in rss.samples), default=None)
    result["rss_samples"] = rss.samples
    return result


# --- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path, label: str) -> Iterator[str]:
    if kind == "sqlite":
        path = workdir / f"{label}.db"
        yield f"sqlite:///{path}"
        return
    from lab.databases import postgres_admin_url, temporary_postgres_database

    with temporary_postgres_database(postgres_admin_url()) as url:
        yield url


def _fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def table(results: dict[str, Any]) -> str:
    fill_ = results.get("fill", {})
    lines = [f"Database: {results['database']}, backlog {results['jobs']:,} jobs "
             f"(filled in {fill_.get('total_s')} s)", "",
             "| database | phase | dispatch tick p50 / p99 / mean (ticks) | metrics tick p50 / "
             "p99 / mean (ticks) | intake | RSS at the end of the phase | load average |",
             "|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        for phase in ("idle", "rate", "throughput"):
            ticks = run["ticks"].get(phase, {})

            def tick(name: str, ticks: dict[str, Any] = ticks) -> str:
                t = ticks.get(name)
                if not t or not t["count"]:
                    return "—"
                return (f"{_fmt(t['p50_ms'])} / {_fmt(t['p99_ms'])} / {_fmt(t['mean_ms'])} ms "
                        f"({t['count']})")

            if phase == "idle":
                intake, rss = "—", run.get("rss_after_idle_mb")
            elif phase == "rate":
                r = run["rate"]
                lat = r["latency_ms"]
                intake = (f"{r['rate']:.0f}/s: p50 {_fmt(lat['p50'])} / p99 {_fmt(lat['p99'])} "
                          f"/ max {_fmt(lat['max'])} ms, {r['errors']} errors, server CPU "
                          f"{r['server_cpu_pct']:.0f}%")
                rss = run.get("rss_after_rate_mb")
            else:
                t = run["throughput"]
                intake = (f"{_fmt(t['rps'])} 2xx/s closed-loop, {t['errors']} errors, server CPU "
                          f"{t['server_cpu_pct']:.0f}%, machine {t['machine_cpu_pct']:.0f}%")
                rss = run.get("rss_end_mb")
            load = run.get("load_average_start") if phase == "idle" else None
            load = load or (run.get("load_average_end") if phase == "throughput" else None)
            lines.append(
                f"| {run['label']} | {phase} | {tick('dispatch')} | {tick('metrics')} "
                f"| {intake} | {_fmt(rss)} MB (peak {_fmt(run.get('rss_peak_mb'))}) "
                f"| {' '.join(f'{x:.2f}' for x in load) if load else ''} |"
            )
    lines += ["", "The claim with the backlog (one claim, rolled back; each SELECT re-run):", ""]
    for step in results.get("explain", []):
        lines.append(f"- {step['ms']} ms: {step['what']}")
        for row in step.get("plan", []):
            lines.append(f"      {row}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="pending jobs in the backlog")
    parser.add_argument("--idle", type=float, default=30.0, help="s without traffic, first")
    parser.add_argument("--duration", type=float, default=10.0, help="closed-loop phase, s")
    parser.add_argument("--rate", type=int, default=100, help="open-loop events/s")
    parser.add_argument("--rate-duration", type=float, default=30.0, help="open-loop phase, s")
    parser.add_argument("--concurrency", type=int, default=64, help="generator connections")
    parser.add_argument("--warmup", type=int, default=500, help="events before measuring")
    parser.add_argument("--max-rps", type=float, default=1000.0,
                        help="events pre-signed for the closed-loop phase: duration x this")
    parser.add_argument("--log-level", default="INFO", help="the server's log level")
    parser.add_argument("--skip-empty", action="store_true", help="only the backlog run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    run = datetime.now().strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {
        "run": run, "python": platform.python_version(), "cpus": os.cpu_count(),
        "database": args.database, "jobs": args.jobs, "rate": args.rate,
        "settings": {k: str(v) for k, v in vars(args).items()}, "runs": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ringback-backlog-") as tmp:
        workdir = Path(tmp)
        try:
            if not args.skip_empty:
                with database(args.database, workdir, "empty") as url:
                    fill(url, 0)
                    results["runs"].append(serve_and_load("empty", url, args, workdir, run))
            with database(args.database, workdir, "backlog") as url:
                print(f"filling {args.jobs:,} jobs ...", file=sys.stderr, flush=True)
                results["fill"] = fill(url, args.jobs)
                print(f"filled in {results['fill']['total_s']} s", file=sys.stderr, flush=True)
                results["explain"] = explain_claim(url)
                results["runs"].append(serve_and_load("backlog", url, args, workdir, run))
        finally:
            for log in workdir.glob("*-server.log"):
                (args.out / f"backlog-{args.database}-{run}-{log.name}").write_bytes(
                    log.read_bytes())
            (args.out / f"backlog-{args.database}-{run}.json").write_text(
                json.dumps(results, indent=2, default=str))
    text_ = table(results)
    (args.out / f"backlog-{args.database}-{run}.md").write_text(text_ + "\n")
    print(text_)
    print(f"\nraw: {args.out / f'backlog-{args.database}-{run}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
