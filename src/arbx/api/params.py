"""Query parameters shared by the routes, with their bounds, and the documented refusals."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import HTTPException, Query

from arbx.api.schemas import MAX_LIMIT, ErrorOut

INT63_MAX: Final = 2**63 - 1
INT255: Final = 2**255

RowId = Annotated[int, Query(ge=1, le=INT63_MAX)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page, 1..{MAX_LIMIT}")]
BeforeId = Annotated[
    int | None,
    Query(
        ge=1,
        le=INT63_MAX,
        description="keyset cursor: only rows with a smaller id (pages go newest first); "
        "pass the previous page's next_before_id",
    ),
]
AfterId = Annotated[
    int | None,
    Query(
        ge=1,
        le=INT63_MAX,
        description="the same cursor as before_id under the name of the original design: "
        "the page continues after this row in listing order (newest first), so with smaller ids",
    ),
]
RunFilter = Annotated[int | None, Query(ge=1, le=INT63_MAX, description="only this run")]

TEXT: Final = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses NUL)
MinNetProfit = Annotated[
    str | None,
    Query(
        pattern=r"^-?[0-9]{1,78}$",
        description="only opportunities with at least this net profit: wei, a decimal string",
        examples=["1000000000000000"],
    ),
]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


# every request may meet the request limits' 414 (a query string over 4 KiB), before any route
READ_ERRORS = _errors(400, 401, 404, 409, 414, 422, 503)
WRITE_ERRORS = _errors(400, 401, 403, 404, 409, 414, 422, 503)


def cursor(before_id: int | None, after_id: int | None) -> int | None:
    """The keyset cursor from ``before_id`` or its alias ``after_id``; 400 if they disagree."""
    if before_id is not None and after_id is not None and before_id != after_id:
        raise HTTPException(400, "give before_id or after_id (the same cursor), not both")
    return before_id if before_id is not None else after_id


def signed_wei(name: str, text: str | None) -> int | None:
    """A signed amount from its decimal string; 400 outside the int256 range."""
    if text is None:
        return None
    value = int(text)
    if not -INT255 <= value < INT255:
        raise HTTPException(400, f"{name} must be between -2^255 and 2^255 - 1")
    return value
