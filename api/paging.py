"""What the list routes share: `limit` and `cursor` in, `total` and `next_cursor` out, and a
cursor the list did not give out refused as 422 `invalid-request`."""

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict, Field

from api.errors import TOKEN_ERRORS, ApiError, error_responses
from campaigns.queries import MAX_CURSOR_LENGTH, MAX_LIMIT, InvalidCursor

DEFAULT_LIMIT = 100

LIST_ERRORS = error_responses({
    **TOKEN_ERRORS,
    422: "`invalid-request`: a parameter is not valid or not known (the message names it), "
         "or the cursor is not one this list gave out",
})


class PageQuery(BaseModel):
    """The query parameters of a list; unknown ones are refused (a misspelt filter must not
    quietly list everything)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="items on a page")
    cursor: str | None = Field(
        None, max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the page before, as it came; none for the first page",
    )


class PageOut(BaseModel):
    total: int = Field(description="the items matching the filters, on every page")
    next_cursor: str | None = Field(
        description="pass it as `cursor` (with the same filters) for the next page; "
                    "null on the last page"
    )


@contextmanager
def cursor_checked() -> Iterator[None]:
    try:
        yield
    except InvalidCursor as exc:
        raise ApiError(422, "invalid-request", f"query.cursor: {exc}") from None
