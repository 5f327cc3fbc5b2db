"""`/api/v1/reports/warnings`: what the warning calls achieved over a period
(campaigns/warning_report.py says what each number counts)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_role
from api.errors import TOKEN_ERRORS, ApiError, error_responses
from api.tokens import ApiToken
from campaigns.events import IsoDateTime
from campaigns.warning_report import InvalidPeriod, warning_report
from infra.db import transaction

router = APIRouter(prefix="/api/v1", tags=["reports"])

MAX_DAYS = 366

REPORT_ERRORS = error_responses({
    **TOKEN_ERRORS,
    422: "`invalid-request`: a parameter is missing, not valid or not known (the message "
         "names it), or `from` is not before `to`",
})


class WarningReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: IsoDateTime = Field(alias="from", description="warnings queued at or after this")
    to: IsoDateTime = Field(description="warnings queued before this")
    topped_up_within_days: int = Field(
        7, ge=1, le=MAX_DAYS,
        description="a warned client converted if it topped up within this many days")


class KindCountsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    balance_warning: int
    campaign_warning: int
    total: int


class ReasonCountsOut(BaseModel):
    """Warnings cancelled or skipped, by why."""

    topped_up: int = Field(description="the client topped up first")
    opted_out: int = Field(description="the client opted out of calls")
    crm_declined: int = Field(description="the CRM said not to call just before dialing")
    campaign_stopped: int = Field(description="the campaign stopped before the call")
    already_contacted: int = Field(description="the client was warned or called recently")
    other: int


class KeyCountsOut(BaseModel):
    """Reached warnings by the key pressed (the final attempt's choice)."""

    key_1: int = Field(serialization_alias="1", description="send the invoice again")
    key_2: int = Field(serialization_alias="2", description="the account manager")
    key_9: int = Field(serialization_alias="9", description="no more calls")
    none: int = Field(description="no key, or no valid one")


class ConversionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    clients: int = Field(description="balance-warned clients in this group")
    topped_up: int = Field(description="of them, those who topped up within the days")
    share: float | None = Field(description="topped_up / clients; null when clients is 0")


class ConversionsOut(BaseModel):
    reached: ConversionOut
    not_reached: ConversionOut


class WarningReportOut(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    topped_up_within_days: int
    queued: KindCountsOut = Field(description="warning jobs created in [from, to)")
    reached: KindCountsOut = Field(description="of them, completed: answered, the flow ran")
    failed: KindCountsOut = Field(description="unanswered: attempts or the window ran out")
    cancelled: KindCountsOut = Field(description="no longer wanted before the call went through")
    skipped: KindCountsOut = Field(description="never dialed (opted out, warned recently)")
    in_progress: KindCountsOut = Field(description="pending or dialing")
    cancel_reasons: ReasonCountsOut = Field(description="cancelled and skipped, by reason")
    keys: KeyCountsOut
    conversion: ConversionsOut = Field(
        description="balance warnings: the clients who topped up, reached and not reached")


@router.get(
    "/reports/warnings",
    response_model=WarningReportOut,
    summary="Warning calls report",
    description=(
        "Over the warning calls queued in [`from`, `to`): how many were queued, reached, "
        "failed, cancelled or skipped (per kind, and cancelled and skipped by reason), the keys "
        "the reached clients pressed, and the share of balance-warned clients who topped up "
        "within `topped_up_within_days` of the warning, reached versus not reached. Needs a "
        "marketing or admin token."
    ),
    responses=REPORT_ERRORS,
)
def report_warnings(
    request: Request,
    _token: Annotated[ApiToken, Depends(require_role("marketing", "admin"))],
    query: Annotated[WarningReportQuery, Query()],
) -> WarningReportOut:
    try:
        with transaction(request.app.state.sessions) as session:
            report = warning_report(session, query.from_, query.to, query.topped_up_within_days)
    except InvalidPeriod:
        raise ApiError(422, "invalid-request", "query.to: must be later than from") from None
    return WarningReportOut(
        from_=report.start, to=report.end, topped_up_within_days=report.topped_up_within_days,
        queued=KindCountsOut.model_validate(report.queued),
        reached=KindCountsOut.model_validate(report.reached),
        failed=KindCountsOut.model_validate(report.failed),
        cancelled=KindCountsOut.model_validate(report.cancelled),
        skipped=KindCountsOut.model_validate(report.skipped),
        in_progress=KindCountsOut.model_validate(report.in_progress),
        cancel_reasons=ReasonCountsOut(**report.cancel_reasons),
        keys=KeyCountsOut(key_1=report.keys["1"], key_2=report.keys["2"],
                          key_9=report.keys["9"], none=report.keys["none"]),
        conversion=ConversionsOut(
            reached=ConversionOut.model_validate(report.reached_conversion),
            not_reached=ConversionOut.model_validate(report.not_reached_conversion)),
    )
