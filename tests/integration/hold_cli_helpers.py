"""Shared by the `ringback hold ...` tests: a migrated SQLite file in a temp folder, the real
CLI run against it, and the hold services on the same database to make and edit tips."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from api.app import HoldParts, build_hold_parts
from audio.prompts import EncodedPrompt
from campaigns.hold_tips import Line, Tip, TipDraft
from infra.db import make_engine, make_sessions, utcnow
from infra.settings import Settings
from ivr.hold_rotation import HoldTiming, RotationMode

RINGBACK = Path(sys.executable).with_name("ringback")
ACTOR = "test"


@dataclass
class Workspace:
    data_dir: Path
    parts: HoldParts
    engine: Engine

    def close(self) -> None:
        self.engine.dispose()

    @property
    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("RINGBACK_")}
        env.update({"RINGBACK_DATA_DIR": str(self.data_dir), "RINGBACK_LOG_LEVEL": "INFO"})
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(RINGBACK), *args], env=self.env, capture_output=True,
                              text=True, timeout=120, cwd=self.data_dir.parent, check=False)

    def popen(self, *args: str, stderr: Path) -> subprocess.Popen[bytes]:
        with open(stderr, "wb") as err:
            return subprocess.Popen([str(RINGBACK), *args], env=self.env,
                                    stdout=subprocess.PIPE, stderr=err,
                                    cwd=self.data_dir.parent)

    def line(self, rotation: RotationMode = RotationMode.ORDER, gap_s: float = 1.0) -> Line:
        return self.parts.tips.save_line(ACTOR, Line("main", "Main", rotation,
                                                     HoldTiming(0.0, gap_s)))

    def tip(self, title: str, text: str, **fields: object) -> Tip:
        draft = TipDraft(title=title, locale="en", lines=("main",), text=text)
        return self.parts.tips.create(ACTOR, TipDraft(**{**draft.__dict__, **fields}))

    def sound(self, tip: Tip) -> EncodedPrompt:
        """The tip as the CLI renders it (same settings, same prompt cache)."""
        return asyncio.run(self.parts.sounds.tip(self.parts.tips.tip(tip.id)))


def workspace(tmp_path: Path) -> Workspace:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    done = subprocess.run([str(RINGBACK), "db", "upgrade"],
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith("RINGBACK_")},
                               "RINGBACK_DATA_DIR": str(data_dir)},
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    settings = Settings(data_dir=data_dir, _env_file=None)
    engine = make_engine(settings.database)
    return Workspace(data_dir, build_hold_parts(settings, make_sessions(engine), utcnow), engine)
