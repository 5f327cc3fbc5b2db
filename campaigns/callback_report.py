"""The callback compliance report: over the callback tasks created in a period, how many came
from each source, how many were resolved and how many before their deadline, how long they
took in working minutes, how many went overdue; the same per agent and per week. With it, the
CSAT trend: the survey scores given in the period, per week and per agent.

Counted by the database (GROUP BY) where it can; the times to resolve are computed here, with
the business calendar, from each resolved task's two instants.

- A task is *counted* when it was created in `[start, end)`, whatever became of it.
- *Resolved*: status `resolved` (a cancelled task is neither resolved nor late);
  *on time*: resolved with `resolved_at <= deadline`.
- *Due*: the tasks whose verdict is known at report time: the resolved ones, and those still
  open or claimed whose deadline has passed. `on_time_share` = on time / due (None when no
  task is due): a task left open past its deadline lowers it, one not yet due does not.
- *Overdue*: the task was marked overdue (`overdue_at` set, whatever its status now), or it is
  still open or claimed and its deadline is before the report time.
- *Time to resolve*: the working minutes (`BusinessCalendar.working_minutes_between`) from
  creation to resolution, of the resolved tasks. The median and the 90th percentile are by the
  nearest-rank method: the value at rank `ceil(p * n)` of the n sorted times (so the median of
  an even count is the lower middle one); None when nothing was resolved.
- *Per agent*: the task's assignee (a ringback username), `unassigned` for none; only agents
  with a task counted appear. *Per week*: the ISO week of the task's creation in the
  calendar's zone; every week the period touches appears, empty or not.
- *CSAT*: the survey responses with a score answered in `[start, end)`; the average score and
  the number of each score 1..5, in all, per ISO week of the answer and per agent (the CRM's
  `agent_id` of the surveyed call, `unknown` for none). The agents of tasks (usernames) and of
  surveys (CRM ids) are different names, so the two lists are kept apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from campaigns.calendar import BusinessCalendar, require_aware
from campaigns.models import CallbackTask, CallbackTaskStatus, SurveyResponse

SOURCES = ("low_score", "manager_requested", "missed_call", "callback_requested")
UNASSIGNED = "unassigned"
UNKNOWN_AGENT = "unknown"
SCORES = (1, 2, 3, 4, 5)
MAX_DAYS = 366

_UNRESOLVED = (CallbackTaskStatus.OPEN, CallbackTaskStatus.CLAIMED)


class InvalidPeriod(ValueError):
    """The period is empty, reversed (start >= end) or longer than MAX_DAYS."""


@dataclass
class TaskStats:
    """The numbers of one group of tasks (all, one agent, one week)."""

    tasks: int = 0
    by_source: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    resolved: int = 0
    on_time: int = 0
    due: int = 0
    overdue: int = 0
    minutes_to_resolve: list[int] = field(default_factory=list, repr=False)

    @property
    def on_time_share(self) -> float | None:
        """on_time / due; None when no task is due."""
        return self.on_time / self.due if self.due else None

    @property
    def median_minutes(self) -> int | None:
        return nearest_rank(self.minutes_to_resolve, 0.5)

    @property
    def p90_minutes(self) -> int | None:
        return nearest_rank(self.minutes_to_resolve, 0.9)


@dataclass
class CsatStats:
    """Scored survey answers of one group."""

    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))

    @property
    def responses(self) -> int:
        return sum(self.distribution.values())

    @property
    def average(self) -> float | None:
        """The mean score; None without a scored answer."""
        count = self.responses
        return sum(s * n for s, n in self.distribution.items()) / count if count else None


@dataclass(frozen=True)
class Week:
    """An ISO week in the calendar's zone: `label` like 2025-W10, `start` its Monday."""

    label: str
    start: date


@dataclass(frozen=True)
class CallbackReport:
    start: datetime
    end: datetime
    generated_at: datetime
    weeks: tuple[Week, ...]
    totals: TaskStats
    by_agent: dict[str, TaskStats]  # sorted by name, "unassigned" last
    by_week: dict[str, TaskStats]  # every week label, in order
    csat: CsatStats
    csat_by_agent: dict[str, CsatStats]
    csat_by_week: dict[str, CsatStats]


def nearest_rank(values: Sequence[int], p: float) -> int | None:
    """The p-quantile (0 < p <= 1) by nearest rank: sorted(values)[ceil(p * n) - 1]."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def check_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period in UTC; InvalidPeriod when it is empty, reversed or too long."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    if start >= end:
        raise InvalidPeriod("the period's start must be before its end")
    if end - start > timedelta(days=MAX_DAYS):
        raise InvalidPeriod(f"the period may be at most {MAX_DAYS} days long")
    return start, end


def iso_weeks(calendar: BusinessCalendar, start: datetime, end: datetime) -> list[Week]:
    """Every ISO week (Monday to Sunday in the calendar's zone) that `[start, end)` touches."""
    first = start.astimezone(calendar.zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(calendar.zone).date()
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        year, number, _ = monday.isocalendar()
        weeks.append(Week(f"{year}-W{number:02d}", monday))
        monday += timedelta(days=7)
    return weeks


def callback_report(session: Session, calendar: BusinessCalendar, start: datetime,
                    end: datetime, now: datetime) -> CallbackReport:
    """The report over the callback tasks created, and surveys answered, in `[start, end)`;
    `now` is the report time (for the tasks still open past their deadline)."""
    start, end = check_period(start, end)
    now = require_aware(now, "now")
    weeks = iso_weeks(calendar, start, end)
    labels = [week.label for week in weeks]
    totals = TaskStats()
    by_agent: dict[str, TaskStats] = defaultdict(TaskStats)
    by_week = {label: TaskStats() for label in labels}

    def groups(agent: str | None, week: int) -> Iterable[TaskStats]:
        return totals, by_agent[agent or UNASSIGNED], by_week[labels[week]]

    counted = and_(CallbackTask.created_at >= start, CallbackTask.created_at < end)
    for row in _task_counts(session, counted, weeks, calendar, now):
        agent, week, reason, tasks, resolved, on_time, due, overdue = row
        for stats in groups(agent, week):
            stats.tasks += tasks
            stats.by_source[reason] = stats.by_source.get(reason, 0) + tasks
            stats.resolved += int(resolved or 0)
            stats.on_time += int(on_time or 0)
            stats.due += int(due or 0)
            stats.overdue += int(overdue or 0)
    resolved_rows = session.execute(
        select(CallbackTask.assignee, _week_of(CallbackTask.created_at, weeks, calendar),
               CallbackTask.created_at, CallbackTask.resolved_at)
        .where(counted, CallbackTask.status == CallbackTaskStatus.RESOLVED,
               CallbackTask.resolved_at.is_not(None))
    ).all()
    for agent, week, created_at, resolved_at in resolved_rows:
        if resolved_at is None:
            continue
        minutes = calendar.working_minutes_between(created_at, max(created_at, resolved_at))
        for stats in groups(agent, week):
            stats.minutes_to_resolve.append(minutes)

    csat, csat_by_agent, csat_by_week = _csat(session, start, end, weeks, calendar)
    return CallbackReport(
        start=start, end=end, generated_at=now, weeks=tuple(weeks), totals=totals,
        by_agent=dict(sorted(by_agent.items(), key=lambda item: (item[0] == UNASSIGNED,
                                                                  item[0]))),
        by_week=by_week, csat=csat, csat_by_agent=csat_by_agent, csat_by_week=csat_by_week,
    )


def _week_of(column: ColumnElement[datetime] | InstrumentedAttribute[datetime],
             weeks: Sequence[Week], calendar: BusinessCalendar) -> ColumnElement[int]:
    """The index in `weeks` of the week `column` falls in (the period's rows only)."""
    bounds = [datetime.combine(week.start + timedelta(days=7), time(), tzinfo=calendar.zone)
              for week in weeks[:-1]]
    if not bounds:
        return literal(0)
    return case(*((column < bound, index) for index, bound in enumerate(bounds)),
                else_=len(bounds))


def _task_counts(session: Session, counted: ColumnElement[bool], weeks: Sequence[Week],
                 calendar: BusinessCalendar, now: datetime) -> Sequence[tuple[
                     str | None, int, str, int, int | None, int | None, int | None, int | None]]:
    """Tasks per (assignee, week, source), with the resolved, on time, due, overdue counts."""
    task = CallbackTask
    resolved = task.status == CallbackTaskStatus.RESOLVED
    late_open = and_(task.status.in_(_UNRESOLVED), task.deadline < now)
    week = _week_of(task.created_at, weeks, calendar).label("week")

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return case((condition, 1), else_=0)

    tasks = select(
        task.assignee, week, task.reason,
        count(resolved).label("resolved"),
        count(and_(resolved, task.resolved_at <= task.deadline)).label("on_time"),
        count(or_(resolved, late_open)).label("due"),
        count(or_(task.overdue_at.is_not(None), late_open)).label("overdue"),
    ).where(counted).subquery()
    rows = session.execute(
        select(tasks.c.assignee, tasks.c.week, tasks.c.reason, func.count(),
               func.sum(tasks.c.resolved), func.sum(tasks.c.on_time), func.sum(tasks.c.due),
               func.sum(tasks.c.overdue))
        .group_by(tasks.c.assignee, tasks.c.week, tasks.c.reason)
    ).all()
    return [tuple(row) for row in rows]


def _csat(session: Session, start: datetime, end: datetime, weeks: Sequence[Week],
          calendar: BusinessCalendar
          ) -> tuple[CsatStats, dict[str, CsatStats], dict[str, CsatStats]]:
    answer = SurveyResponse
    week = _week_of(answer.answered_at, weeks, calendar).label("week")
    answers = (select(answer.agent_id, week, answer.score)
               .where(answer.answered_at >= start, answer.answered_at < end,
                      answer.score.in_(SCORES))
               .subquery())
    rows = session.execute(
        select(answers.c.agent_id, answers.c.week, answers.c.score, func.count())
        .group_by(answers.c.agent_id, answers.c.week, answers.c.score)
    ).all()
    total = CsatStats()
    by_agent: dict[str, CsatStats] = defaultdict(CsatStats)
    by_week = {w.label: CsatStats() for w in weeks}
    for agent, index, score, responses in rows:
        for stats in (total, by_agent[agent or UNKNOWN_AGENT], by_week[weeks[index].label]):
            stats.distribution[score] += responses
    agents = dict(sorted(by_agent.items(), key=lambda item: (item[0] == UNKNOWN_AGENT,
                                                              item[0])))
    return total, agents, by_week
