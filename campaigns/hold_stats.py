"""How often each tip was played on each line, and how many callers hung up while it played."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.hold_models import HoldTip, HoldTipStat
from infra.db import transaction, upsert_insert


@dataclass(frozen=True)
class TipStats:
    plays: int = 0
    hangups: int = 0


class HoldStats:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def played(self, tip_id: int, line: str) -> None:
        self._count(tip_id, line, plays=1, hangups=0)

    def hung_up_during(self, tip_id: int, line: str) -> None:
        self._count(tip_id, line, plays=0, hangups=1)

    def totals(self, tip_ids: Iterable[int] | None = None) -> dict[int, TipStats]:
        """Plays and hang-ups of each tip over all lines and days."""
        query = select(HoldTipStat.tip_id, func.sum(HoldTipStat.plays),
                       func.sum(HoldTipStat.hangups)).group_by(HoldTipStat.tip_id)
        if tip_ids is not None:
            query = query.where(HoldTipStat.tip_id.in_(list(tip_ids)))
        with self._sessions() as session:
            return {tip_id: TipStats(int(plays or 0), int(hangups or 0))
                    for tip_id, plays, hangups in session.execute(query)}

    def _count(self, tip_id: int, line: str, *, plays: int, hangups: int) -> None:
        with transaction(self._sessions) as session:
            if session.get(HoldTip, tip_id) is None:
                return  # deleted while it played: nothing left to count against
            insert = upsert_insert(session, HoldTipStat)
            session.execute(insert.values(
                tip_id=tip_id, line=line, day=self._clock().date(), plays=plays,
                hangups=hangups).on_conflict_do_update(
                index_elements=[HoldTipStat.tip_id, HoldTipStat.line, HoldTipStat.day],
                set_={"plays": HoldTipStat.plays + plays,
                      "hangups": HoldTipStat.hangups + hangups}))
