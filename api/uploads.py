"""Recordings people upload (`multipart/form-data`, one file field), read with a bound: a body
over the limit is refused from its `Content-Length` before anything is read, and a body that
does not declare its length (or lies) is counted while it streams and cut off at the limit —
never read whole into memory. Small text fields (the pages' CSRF token, a title) are capped too.

FastAPI's own `UploadFile` parameters are not used for this: they would spool any size to disk
before the route runs.
"""

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from audio.errors import UploadRefused
from audio.upload import UploadLimits

LIMITS = UploadLimits()
FORM_OVERHEAD = 64 * 1024  # the boundaries, part headers and small fields around the file
MAX_FIELD_BYTES = 16 * 1024
MAX_FIELDS = 40


class UploadTooLarge(Exception):
    """The body is over `max_body`: nothing of it was kept."""


class BadUpload(Exception):
    """Not a multipart form we can read (no boundary, cut short, too many fields)."""


@dataclass
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: bytes | None = None  # the first file field's content, if one was sent
    filename: str = ""
    fields_multi: dict[str, list[str]] = field(default_factory=dict)

    def getlist(self, name: str) -> list[str]:
        return self.fields_multi.get(name, [])


def too_large_refusal(limits: UploadLimits = LIMITS) -> UploadRefused:
    megabytes = limits.max_bytes / (1024 * 1024)
    return UploadRefused(
        "audio-too-large",
        f"The upload is over the limit of {megabytes:g} MB. Upload a shorter recording, or "
        "export it as MP3 or OGG, which are much smaller.")


def is_multipart(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind == "multipart/form-data"


async def read_upload_form(request: Request, max_body: int | None = None) -> UploadForm:
    """The multipart form of `request`, its body at most `max_body` bytes (default: the upload
    limit plus room for the form around it). Raises `UploadTooLarge` or `BadUpload`."""
    limit = LIMITS.max_bytes + FORM_OVERHEAD if max_body is None else max_body
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"{declared} bytes")
    if not is_multipart(request):
        raise BadUpload("send the file as multipart/form-data")

    async def counted() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise UploadTooLarge(f"over {limit} bytes")
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=MAX_FIELDS,
                             max_part_size=MAX_FIELD_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadUpload(exc.message) from None
    result = UploadForm()
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if result.file is None:
                    result.file = await value.read()
                    result.filename = value.filename or ""
            else:
                result.fields.setdefault(name, value)
                result.fields_multi.setdefault(name, []).append(value)
    finally:
        await form.close()
    return result

