"""Reads a request body (JSON, JSON without a Content-Type, or multipart form) into a schema plus image bytes,
fetching images given as URLs."""

import asyncio
import base64
import binascii
import json
from typing import TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from handler.config import get_settings
from handler.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from handler.fetch import fetch_image

T = TypeVar("T", bound=BaseModel)

# multipart file field -> JSON base64 field holding the same image
IMAGE_FIELDS = {"image": "image_base64", "image2": "image2_base64"}
# multipart file field -> JSON field with a URL of the same image
URL_FIELDS = {"image": "image_url", "image2": "image2_url"}
BASE64_OVERHEAD = 4 / 3
FORM_URLENCODED = "application/x-www-form-urlencoded"
JSON_LIKE = ("", "application/json", "text/plain", FORM_URLENCODED)  # bodies read as JSON


def decode_base64(text: str, field: str) -> bytes:
    if text.startswith("data:"):  # data:image/png;base64,....
        text = text.partition(",")[2]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field} is not valid base64", field=field) from None


async def read_request(request: Request, schema: type[T], *, max_image_bytes: int) -> tuple[T, dict[str, bytes]]:
    """-> (validated body, {"image": bytes, "image2": bytes} for the images present)."""
    limit = int(2 * max_image_bytes * BASE64_OVERHEAD) + 65536  # two images as base64, plus the other fields
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit}", limit_bytes=limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    images: dict[str, bytes] = {}
    if content_type == "multipart/form-data":
        fields: dict = {}
        async with request.form(max_files=len(IMAGE_FIELDS), max_part_size=1024 * 1024) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key not in IMAGE_FIELDS:
                        raise InvalidRequest(f"unexpected file field {key!r}; send the photo as 'image'", field=key)
                    images[key] = await value.read(max_image_bytes + 1)
                else:
                    fields[key] = _form_value(key, value, schema)
    elif content_type in JSON_LIKE or content_type.endswith("+json"):
        # No-code tools sometimes send JSON without a Content-Type, as text/plain, or (like `curl -d`) labelled as
        # a form; a form body that is not a JSON object is refused below.
        raw = await request.body()
        if content_type == FORM_URLENCODED and not raw.lstrip().startswith(b"{"):
            raise UnsupportedMediaType("form-encoded bodies are not accepted: send JSON (Content-Type: "
                                       "application/json) or multipart/form-data",
                                       supported=["application/json", "multipart/form-data"])
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit}", limit_bytes=limit)
        try:
            fields = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidRequest("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise InvalidRequest("the JSON body must be an object")
    else:
        raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}",
                                   supported=["application/json", "multipart/form-data"])
    try:
        body = schema.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequest.from_validation(exc.errors()) from None
    for file_field, b64_field in IMAGE_FIELDS.items():
        text = getattr(body, b64_field, None)
        if text and file_field in images:
            raise InvalidRequest(f"send the image either as the {file_field!r} file or as {b64_field!r}, not both")
        if text:
            images[file_field] = decode_base64(text, b64_field)
    urls = {f: getattr(body, url_field, None) for f, url_field in URL_FIELDS.items()}
    urls = {f: url for f, url in urls.items() if url}
    for file_field in urls.keys() & images.keys():
        raise InvalidRequest(f"send the image one way: {URL_FIELDS[file_field]!r}, {IMAGE_FIELDS[file_field]!r} "
                             f"or the {file_field!r} file", field=URL_FIELDS[file_field])
    fetched = await asyncio.gather(*(run_in_threadpool(fetch_url, url, max_image_bytes) for url in urls.values()))
    images.update(zip(urls, fetched))
    return body, images


def fetch_url(url: str, max_bytes: int) -> bytes:
    settings = get_settings()
    return fetch_image(url, max_bytes=max_bytes, connect_timeout=settings.url_connect_timeout,
                       read_timeout=settings.url_read_timeout, total_timeout=settings.url_total_timeout,
                       max_redirects=settings.url_max_redirects)


def _form_value(key: str, value: str, schema: type[BaseModel]):
    """Form fields are text: JSON objects (edits, start, end, attributes) are parsed, the rest left to pydantic."""
    field = schema.model_fields.get(key)
    if field is not None and "dict" in str(field.annotation):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise InvalidRequest(f"form field {key!r} must be a JSON object, e.g. {{\"Smiling\": 1.0}}",
                                 field=key) from None
    return value
