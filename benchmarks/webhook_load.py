"""Webhook benchmark: signed ``call.completed`` events per second, next to a bare FastAPI endpoint.

    .venv/bin/python -m benchmarks.webhook_load [--duration 15] [--rate-duration 10]
        [--rates 100 half] [--concurrency 64] [--loop asyncio] [--http h11]

One after the other, each on a fresh port of 127.0.0.1 and in its own process
(``benchmarks.webhook_bare_app``), under uvicorn with the same settings (one worker, the same
``--loop`` and ``--http``, no access log):

1. **bare**: a FastAPI app whose ``POST /webhooks/crm`` reads the body and answers 202 JSON;
2. **real**: ringback's app (``create_app`` with a no-op telephony backend) on a fresh SQLite
   database in a temporary data dir, migrated with ``infra.migrate.upgrade``; the survey delay is
   a week, so every event creates a pending job and nothing is dialed.

Against each, a load generator in another process (httpx ``AsyncClient``, ``--concurrency``
connections) sends ``call.completed`` events, each with its own event id, call id, client id and
phone (+7999xxxxxxx), signed with Standard Webhooks before the clock starts:

- warm-up: ``--warmup`` requests, not counted in the figures;
- throughput: ``--concurrency`` closed-loop workers for ``--duration`` s -> 2xx responses per
  second, errors, and the CPU of the server, of the generator and of the machine;
- latency: for each of ``--rates`` (req/s; ``half`` = 50% of the bare endpoint's throughput of
  this run), ``--rate-duration`` s of open-loop sending (request i is due at t0 + i/rate, whether
  or not earlier ones have answered; latency counts from that due time) -> p50 / p99 / max.

Then the real server is stopped and its database is checked: one ``webhook_events`` row and one
job per accepted (202) event, every job still pending. The markdown table goes to stdout and,
with the raw JSON and the servers' logs, to ``benchmarks/results/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ENDPOINT = "/webhooks/crm"
BAR = 0.5  # the real app must accept at least half the bare endpoint's throughput


# --- the events ----------------------------------------------------------------------------------


def signed_events(
    first: int, count: int, run: str, secret: str
) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` unique, valid, signed ``call.completed`` events (body, headers), numbered from
    ``first``: distinct event, call and client ids and phones, so none is a duplicate and no
    survey is skipped as "already surveyed"."""
    from standardwebhooks import Webhook

    webhook = Webhook(secret)
    now = datetime.now(UTC)
    stamp = str(int(now.timestamp()))
    when = now.isoformat(timespec="seconds")
    events = []
    for n in range(first, first + count):
        event_id = f"bench-{run}-{n}"
        body = json.dumps({
            "id": event_id,
            "type": "call.completed",
            "occurred_at": when,
            "data": {
                "call_id": f"call-{run}-{n}",
                "client_id": f"client-{run}-{n}",
                "phone": f"+7999{n % 10_000_000:07d}",
                "ended_at": when,
                "duration_s": 95.0,
                "agent_id": f"agent-{n % 40}",
                "queue": "support",
                "timezone": "Europe/Moscow",
                "locale": "ru",
            },
        }, separators=(",", ":"))
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": stamp,
            "webhook-signature": webhook.sign(event_id, now, body),
        }
        events.append((body.encode(), headers))
    return events


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --- the load generator (its own process) ---------------------------------------------------------


class Counts:
    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.accepted = 0  # 202
        self.ok = 0  # any 2xx
        self.errors = 0  # non-2xx or transport error
        self.latencies: list[float] = []

    def add(self, status: int | str, latency: float | None) -> None:
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if isinstance(status, int) and 200 <= status < 300:
            self.ok += 1
            if status == 202:
                self.accepted += 1
        else:
            self.errors += 1
        if latency is not None:
            self.latencies.append(latency)

    def summary(self) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        return {
            "statuses": self.statuses, "ok": self.ok, "accepted": self.accepted,
            "errors": self.errors,
            "latency_ms": {"p50": percentile(ms, 50), "p99": percentile(ms, 99),
                           "max": max(ms) if ms else None, "count": len(ms)},
        }


async def _post(client: Any, event: tuple[bytes, dict[str, str]], counts: Counts,
                started: float) -> None:
    body, headers = event
    try:
        response = await client.post(ENDPOINT, content=body, headers=headers)
        await response.aread()
        status: int | str = response.status_code
    except Exception as exc:  # counted and named, never fatal
        status = type(exc).__name__
    counts.add(status, time.perf_counter() - started)


class CpuMeter:
    """CPU of the server, of this process and of the machine, in % of one core, over a span."""

    def __init__(self, server_pid: int) -> None:
        import psutil  # type: ignore[import-untyped]

        self._server = psutil.Process(server_pid)
        self._me = psutil.Process()
        self._psutil = psutil

    def _sample(self) -> tuple[float, float, float, float]:
        server, me = self._server.cpu_times(), self._me.cpu_times()
        machine = self._psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return (time.perf_counter(), server.user + server.system, me.user + me.system, busy)

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        wall = end[0] - self._start[0]
        names = ("server", "generator", "machine")
        return {f"{name}_cpu_pct": round(100 * (end[i + 1] - self._start[i + 1]) / wall, 1)
                for i, name in enumerate(names)}


async def _closed_loop(clients: list[Any], events: list[tuple[bytes, dict[str, str]]],
                       duration: float) -> tuple[Counts, float, bool]:
    """One worker per client (connection), each sending its next event as soon as the last one
    is answered, until ``duration`` is over."""
    counts = Counts()
    source = iter(events)
    exhausted = False
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def worker(client: Any) -> None:
        nonlocal exhausted
        while time.perf_counter() < deadline:
            event = next(source, None)
            if event is None:
                exhausted = True
                return
            await _post(client, event, counts, time.perf_counter())

    await asyncio.gather(*(worker(client) for client in clients))
    return counts, time.perf_counter() - t0, exhausted


async def _open_loop(clients: list[Any], events: list[tuple[bytes, dict[str, str]]],
                     rate: float, grace: float) -> tuple[Counts, float, int]:
    """Request i is due at t0 + i/rate and goes out on the first idle connection; its latency
    counts from the due time, so waiting for a connection counts too (no coordinated omission)."""
    counts = Counts()
    idle: asyncio.Queue[Any] = asyncio.Queue()
    for client in clients:
        idle.put_nowait(client)

    async def send(event: tuple[bytes, dict[str, str]], due: float) -> None:
        client = await idle.get()
        try:
            await _post(client, event, counts, due)
        finally:
            idle.put_nowait(client)

    tasks = []
    late_starts = 0
    t0 = time.perf_counter() + 0.05
    for i, event in enumerate(events):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late_starts += 1  # the generator itself fell behind the schedule
        tasks.append(asyncio.create_task(send(event, due)))
    sent_for = time.perf_counter() - t0
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
        counts.add("unfinished", None)
    return counts, sent_for, late_starts


async def generate(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    # One client per connection: httpcore's pool gets much slower per request as one client's
    # connections grow (64 connections in one AsyncClient: ~60 req/s here, 64 clients: ~500).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(60.0, pool=None)
    meter = CpuMeter(spec["server_pid"])
    run, secret, n = spec["run"], spec["secret"], 0
    result: dict[str, Any] = {"server": spec["server"]}
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(
            httpx.AsyncClient(base_url=spec["url"], limits=limits, timeout=timeout))
            for _ in range(spec["concurrency"])]
        # Everything is signed before the first request: no signing inside a measured phase,
        # and no pause between phases long enough for the server to close idle connections
        # (uvicorn's keep-alive timeout is 5 s). The last event is a few tens of seconds old
        # when sent, well inside the webhook's tolerance.
        bare_rps = spec.get("bare_rps")
        rate_pools = []
        for rate_spec in spec["rates"]:
            most = BAR * (bare_rps or spec["max_rps"]) if rate_spec == "half" else float(rate_spec)
            rate_pools.append(max(1, int(most * spec["rate_duration"])))
        sizes = [spec["warmup"], int(spec["duration"] * spec["max_rps"]), *rate_pools]
        everything = signed_events(spec.get("first", 0), sum(sizes), run, secret)
        pools = []
        for size in sizes:
            pools.append(everything[n:n + size])
            n += size
        del everything
        warm, pool, *rate_events = pools

        warm_counts, _, _ = await _closed_loop(clients, warm, 120.0)
        result["warmup"] = warm_counts.summary()

        meter.start()
        counts, elapsed, exhausted = await _closed_loop(clients, pool, spec["duration"])
        cpu = meter.stop()
        throughput = counts.ok / elapsed
        # Server CPU per answered request: what the server's own work costs, whoever the
        # bottleneck was; 1000 / it = requests per second one busy core would carry.
        per_request_ms = cpu["server_cpu_pct"] / 100 * elapsed / max(1, counts.ok) * 1000
        result["throughput"] = {
            **counts.summary(), **cpu, "elapsed_s": round(elapsed, 3),
            "rps": round(throughput, 1), "pool_exhausted": exhausted,
            "server_cpu_ms_per_request": round(per_request_ms, 3),
            "rps_per_server_core": round(1000 / per_request_ms, 1) if per_request_ms else None,
        }

        result["rates"] = []
        for rate_spec, events in zip(spec["rates"], rate_events, strict=True):
            rate = BAR * (bare_rps or throughput) if rate_spec == "half" else float(rate_spec)
            events = events[:max(1, int(rate * spec["rate_duration"]))]
            meter.start()
            counts, sent_for, late = await _open_loop(clients, events, rate,
                                                      grace=spec["rate_duration"] + 60.0)
            cpu = meter.stop()
            result["rates"].append({
                "rate_spec": rate_spec, "rate": round(rate, 1), "sent": len(events),
                "sent_for_s": round(sent_for, 3), "late_starts": late, **counts.summary(), **cpu,
            })
    result["accepted_total"] = (result["warmup"]["accepted"] + result["throughput"]["accepted"]
                                + sum(r["accepted"] for r in result["rates"]))
    result["sent_total"] = (result["warmup"]["ok"] + result["warmup"]["errors"]
                            + result["throughput"]["ok"] + result["throughput"]["errors"]
                            + sum(r["sent"] for r in result["rates"]))
    return result


# --- the orchestrator ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log}:\n"
                               + log.read_text(errors="replace")[-2000:])
        with contextlib.suppress(OSError), urllib.request.urlopen(
            f"{url}/healthz", timeout=2
        ) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {timeout} s; see {log}")


def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: lifespan ends
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def check_database(path: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        events = db.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
        jobs = dict(db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
        outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return {"webhook_events": events, "jobs": jobs, "outbox": outbox}


def run_server(kind: str, args: argparse.Namespace, workdir: Path, run: str,
               bare_rps: float | None) -> dict[str, Any]:
    from infra.settings import DEV_WEBHOOK_SECRET

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = workdir / f"{kind}-data"
    command = [sys.executable, "-m", "benchmarks.webhook_bare_app", kind, "--port", str(port),
               "--loop", args.loop, "--http", args.http, "--log-level", args.log_level]
    if kind == "real":
        from infra.migrate import upgrade

        upgrade(f"sqlite:///{data_dir / 'ringback.db'}")
        command += ["--data-dir", str(data_dir)]
    log = workdir / f"{kind}-server.log"
    spec = {
        "server": kind, "url": url, "run": f"{run}-{kind}", "secret": DEV_WEBHOOK_SECRET,
        "concurrency": args.concurrency, "warmup": args.warmup, "duration": args.duration,
        "max_rps": args.max_rps, "rates": args.rates, "rate_duration": args.rate_duration,
        "bare_rps": bare_rps,
    }
    out = workdir / f"{kind}-generator.json"
    with log.open("wb") as log_file:
        # cwd: the work dir, so no .env of the checkout is read.
        server = subprocess.Popen(command, cwd=workdir, env=_clean_env(), stdout=log_file,
                                  stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, server, log, timeout=60.0)
            spec["server_pid"] = server.pid
            budget = 300.0 + args.duration + len(args.rates) * (args.rate_duration + 60.0)
            generator = subprocess.run(
                [sys.executable, "-m", "benchmarks.webhook_load", "--generate", json.dumps(spec),
                 "--generate-out", str(out)],
                cwd=workdir, env=_clean_env(), timeout=budget, check=False,
            )
            if generator.returncode != 0:
                raise RuntimeError(f"load generator failed with {generator.returncode}")
        finally:
            _stop(server)
    result: dict[str, Any] = json.loads(out.read_text())
    result["server_exit"] = server.returncode
    if kind == "real":
        db = check_database(data_dir / "ringback.db")
        accepted = result["accepted_total"]
        result["database"] = db
        result["persisted_ok"] = (db["webhook_events"] == accepted
                                  and sum(db["jobs"].values()) == accepted
                                  and db["jobs"].get("pending", 0) == accepted)
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    bare, real = results["bare"], results["real"]
    lines = [
        "| server | throughput (2xx/s) | errors | server CPU | server CPU per request "
        "| 2xx/s per busy server core | generator CPU | machine CPU | closed-loop p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("bare FastAPI", bare), ("ringback webhook", real)):
        t = r["throughput"]
        lines.append(
            f"| {name} | {_fmt(t['rps'])} | {t['errors']} | {t['server_cpu_pct']:.0f}% "
            f"| {t['server_cpu_ms_per_request']:.2f} ms | {_fmt(t['rps_per_server_core'], 0)} "
            f"| {t['generator_cpu_pct']:.0f}% | {t['machine_cpu_pct']:.0f}% "
            f"| {_fmt(t['latency_ms']['p50'])} / {_fmt(t['latency_ms']['p99'])} ms |"
        )
    ratio = real["throughput"]["rps"] / bare["throughput"]["rps"]
    cost = (bare["throughput"]["server_cpu_ms_per_request"]
            / real["throughput"]["server_cpu_ms_per_request"])
    lines += ["", f"ringback / bare throughput: **{ratio:.0%}** (the bar: {BAR:.0%}); "
              f"by server CPU per request: {cost:.0%}", "",
              "| server | rate (req/s) | sent | 2xx | errors | p50 | p99 | max | server CPU |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, r in (("bare FastAPI", bare), ("ringback webhook", real)):
        for p in r["rates"]:
            label = f"{p['rate']:.0f}" + (" (½ bare)" if p["rate_spec"] == "half" else "")
            lat = p["latency_ms"]
            lines.append(
                f"| {name} | {label} | {p['sent']} | {p['ok']} | {p['errors']} "
                f"| {_fmt(lat['p50'])} ms | {_fmt(lat['p99'])} ms | {_fmt(lat['max'])} ms "
                f"| {p['server_cpu_pct']:.0f}% |"
            )
    db = real["database"]
    lines += ["", f"Persisted: {db['webhook_events']} webhook_events rows, jobs {db['jobs']} for "
              f"{real['accepted_total']} accepted events -> "
              f"{'OK' if real['persisted_ok'] else 'MISMATCH'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="throughput phase, s")
    parser.add_argument("--rate-duration", type=float, default=10.0, help="each fixed rate, s")
    parser.add_argument("--rates", nargs="+", default=["100", "half"],
                        help="fixed rates in req/s; 'half' = 50%% of the bare throughput")
    parser.add_argument("--concurrency", type=int, default=64, help="connections / workers")
    parser.add_argument("--warmup", type=int, default=500, help="requests before measuring")
    parser.add_argument("--max-rps", type=float, default=3000.0,
                        help="events pre-signed for the throughput phase: duration x this")
    parser.add_argument("--loop", default="asyncio", help="uvicorn loop for both servers")
    parser.add_argument("--http", default="h11", help="uvicorn http for both servers")
    parser.add_argument("--log-level", default="INFO", help="the real app's log level")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--generate-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.generate:  # the load generator's own process
        result = asyncio.run(generate(json.loads(args.generate)))
        args.generate_out.write_text(json.dumps(result, indent=2))
        return 0

    for rate in args.rates:
        if rate != "half":
            float(rate)
    run = datetime.now().strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {
        "run": run, "python": platform.python_version(), "cpus": os.cpu_count(),
        "settings": {k: v for k, v in vars(args).items() if not k.startswith("generate")
                     and k != "out"},
    }
    with tempfile.TemporaryDirectory(prefix="ringback-webhook-load-") as tmp:
        workdir = Path(tmp)
        try:
            results["bare"] = run_server("bare", args, workdir, run, None)
            bare_rps = results["bare"]["throughput"]["rps"]
            results["real"] = run_server("real", args, workdir, run, bare_rps)
        finally:
            args.out.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*-server.log"):
                (args.out / f"webhook_load-{run}-{log.name}").write_bytes(log.read_bytes())
            (args.out / f"webhook_load-{run}.json").write_text(
                json.dumps(results, indent=2, default=str))
    text = table(results)
    (args.out / f"webhook_load-{run}.md").write_text(text + "\n")
    print(text)
    print(f"\nraw: {args.out / f'webhook_load-{run}.json'}")
    return 0 if results["real"]["persisted_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
