"""The two servers of the webhook benchmark (``benchmarks.webhook_load``), one per process.

    python -m benchmarks.webhook_bare_app real --port P --data-dir DIR [--loop asyncio --http h11]
    python -m benchmarks.webhook_bare_app bare --port P [--loop asyncio --http h11]

``real``: ringback's own app (``api.app.create_app``) with the in-memory telephony backend instead
of the SIP engine, on the SQLite database in ``DIR`` (migrated beforehand by the caller). The
scheduler ticks (dispatch, lease reaper, outbox) run as in ``ringback serve``; the survey delay
is a week, so the jobs the events create stay pending and nothing is dialed during a run.

``bare``: a FastAPI app with one ``POST /webhooks/crm`` that reads the body and answers 202 with a
small JSON body, and a ``GET /healthz`` for the readiness probe. Nothing else.

Both run under uvicorn exactly as ``ringback serve`` runs the real app (one worker, no access
log, ``log_config=None``), with the same ``--loop`` and ``--http`` for both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from telephony.memory import MemoryBackend, Scripted
from telephony.outcomes import Outcome

WEEK_S = 7 * 24 * 3600.0


def bare_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.post("/webhooks/crm", status_code=202)
    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"status": "accepted", "bytes": len(body)}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def real_settings(data_dir: Path, port: int, log_level: str) -> object:
    """The settings of the real app under test: defaults, except what keeps it off the phone."""
    from infra.settings import Settings

    return Settings(
        _env_file=None,  # no .env from wherever this runs
        data_dir=data_dir,
        http_host="127.0.0.1",
        http_port=port,
        log_level=log_level,
        sip_port=0,
        # Jobs are created (pending) but due in a week: the dispatcher never claims one.
        survey_delay_s=WEEK_S,
        survey_max_lateness_s=WEEK_S,
    )


def real_app(data_dir: Path, port: int, log_level: str) -> FastAPI:
    from api.app import create_app
    from infra.logs import configure_logging

    settings = real_settings(data_dir, port, log_level)
    configure_logging(settings.log_level)  # type: ignore[attr-defined]
    # No job is due during a run; were one due, its call would fail at once, dialing nobody.
    return create_app(settings, backend=MemoryBackend(Scripted(Outcome.FAILED)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=["real", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, help="real: the data dir (database migrated)")
    parser.add_argument("--loop", default="asyncio", help="uvicorn --loop (asyncio, uvloop)")
    parser.add_argument("--http", default="h11", help="uvicorn --http (h11, httptools)")
    parser.add_argument("--log-level", default="INFO", help="real: RINGBACK_LOG_LEVEL")
    args = parser.parse_args(argv)
    if args.app == "real":
        if args.data_dir is None:
            parser.error("real needs --data-dir")
        app = real_app(args.data_dir, args.port, args.log_level)
    else:
        app = bare_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_config=None,
                            access_log=False, loop=args.loop, http=args.http, workers=1)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
