"""Reads a request body (JSON, JSON without a Content-Type, or multipart form) into a schema plus image bytes,
fetching images given as URLs.

The body is counted while it streams in and refused (413) the moment it passes the cap, with or without a
Content-Length (chunked); multipart parts are kept in memory, never spooled to disk. Parsing, validation and base64
run in a worker thread, off the event loop. JSON is refused with a 422 `invalid_request`, not a crash, when it is
nested too deeply, holds an integer too long to convert, or a lone UTF-16 surrogate (valid as a JSON escape, not
encodable as UTF-8)."""

import asyncio
import base64
import binascii
import json
from typing import AsyncIterator, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from handler.config import get_settings
from handler.errors import BadRequest, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from handler.fetch import fetch_image

T = TypeVar("T", bound=BaseModel)

# multipart file field -> JSON base64 field holding the same image
IMAGE_FIELDS = {"image": "image_base64", "image2": "image2_base64"}
# multipart file field -> JSON field with a URL of the same image
URL_FIELDS = {"image": "image_url", "image2": "image2_url"}
BASE64_OVERHEAD = 4 / 3
FORM_URLENCODED = "application/x-www-form-urlencoded"
JSON_LIKE = ("", "application/json", "text/plain", FORM_URLENCODED)  # bodies read as JSON
MAX_JSON_DEPTH = 16  # the deepest valid body is 2 levels (edits inside the body); json.loads itself fails near 1000
MAX_FORM_FIELDS = 32
MAX_FORM_FILES = 4  # more than the two image fields, so that a repeated or unknown one gets a clear 422


def body_limit(max_image_bytes: int) -> int:
    """Two images as base64, plus the other fields."""
    return int(2 * max_image_bytes * BASE64_OVERHEAD) + 65536


def decode_base64(text: str, field: str) -> bytes:
    if text.startswith("data:"):  # data:image/png;base64,....
        text = text.partition(",")[2]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field} is not valid base64", field=field) from None


def _check_text(text: str, where: str) -> None:
    if not text.isascii():  # O(1) for the common case: base64 and ASCII names
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{where} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid "
                                 "Unicode text", field=where) from None


def check_json(value, where: str = "body") -> None:
    """Depth and text checks on parsed JSON, without recursion."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidRequest(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep", field=where)
            if isinstance(item, dict):
                for key in item:
                    _check_text(key, where)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def parse_json(raw: bytes | str, where: str = "body"):
    """json.loads, with every way it can fail on hostile input turned into a 422."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidRequest(f"{where} is nested too deeply", field=where) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequest(f"{where} is not valid JSON", field=where) from None
    except ValueError:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise InvalidRequest(f"{where} holds a number with too many digits", field=where) from None
    check_json(value, where)
    return value


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The request body, refused as soon as it passes `limit` bytes, however it is framed."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes", limit_bytes=limit)
        yield chunk


class _InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser, with file parts kept in memory (the body is capped anyway): nothing the caller sent is
    written to disk."""
    spool_max_size = 1 << 62


async def _read_multipart(request: Request, limit: int, schema: type[BaseModel],
                          max_image_bytes: int) -> tuple[dict, dict[str, bytes]]:
    parser = _InMemoryMultiPartParser(Headers(scope=request.scope), _capped(request.stream(), limit),
                                      max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
                                      max_part_size=1024 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"the multipart body could not be read: {exc.message}") from None
    fields: dict = {}
    images: dict[str, bytes] = {}
    try:
        for key, value in form.multi_items():
            _check_text(key, "multipart field name")
            if key in fields or key in images:
                raise InvalidRequest(f"the field {key!r} is given more than once; send it once", field=key)
            if isinstance(value, UploadFile):
                if key not in IMAGE_FIELDS:
                    raise InvalidRequest(f"unexpected file field {key!r}; send the photo as 'image'", field=key)
                images[key] = await value.read(max_image_bytes + 1)
            else:
                _check_text(value, key)
                fields[key] = value
    finally:
        await form.close()
    return fields, images


def _form_value(key: str, value: str, schema: type[BaseModel]):
    """Form fields are text: JSON objects (edits, start, end, attributes) are parsed, the rest left to pydantic."""
    field = schema.model_fields.get(key)
    if field is not None and "dict" in str(field.annotation):
        value = parse_json(value, key)
        if not isinstance(value, dict):
            raise InvalidRequest(f"form field {key!r} must be a JSON object, e.g. {{\"Smiling\": 1.0}}", field=key)
    return value


def _validate(schema: type[T], fields: dict, images: dict[str, bytes]) -> tuple[T, dict[str, bytes]]:
    """Schema validation and base64 decoding (CPU work: runs in a worker thread)."""
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
    return body, images


def _from_json(raw: bytes, schema: type[T]) -> tuple[T, dict[str, bytes]]:
    fields = parse_json(raw)
    if not isinstance(fields, dict):
        raise InvalidRequest("the JSON body must be an object")
    _refuse_booleans(fields)
    return _validate(schema, fields, {})


def _refuse_booleans(fields: dict) -> None:
    """No field takes true/false, but pydantic's lax mode would read them as 1/0 (a numeric string such as "0.5"
    stays accepted: no-code tools template numbers into strings)."""
    for name, value in fields.items():
        values = value.items() if isinstance(value, dict) else [(None, value)]
        for key, item in values:
            if isinstance(item, bool):
                where = f"{name}.{key}" if key is not None else name
                raise InvalidRequest(f"invalid request: {where}: a number or text is expected, not {str(item).lower()}",
                                     problems=[{"field": where, "problem": "booleans are not accepted"}])


def _from_form(fields: dict, images: dict[str, bytes], schema: type[T]) -> tuple[T, dict[str, bytes]]:
    return _validate(schema, {k: _form_value(k, v, schema) for k, v in fields.items()}, images)


async def read_request(request: Request, schema: type[T], *, max_image_bytes: int) -> tuple[T, dict[str, bytes]]:
    """-> (validated body, {"image": bytes, "image2": bytes} for the images present)."""
    limit = body_limit(max_image_bytes)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit}", limit_bytes=limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        fields, files = await _read_multipart(request, limit, schema, max_image_bytes)
        if not fields and not files:
            raise InvalidRequest("the request has no fields: send the photo and settings as JSON or multipart")
        body, images = await run_in_threadpool(_from_form, fields, files, schema)
    elif content_type in JSON_LIKE or content_type.endswith("+json"):
        # No-code tools sometimes send JSON without a Content-Type, as text/plain, or (like `curl -d`) labelled as
        # a form; a form body that is not a JSON object is refused below.
        raw = b"".join([chunk async for chunk in _capped(request.stream(), limit)])
        if content_type == FORM_URLENCODED and not raw.lstrip().startswith(b"{"):
            raise UnsupportedMediaType("form-encoded bodies are not accepted: send JSON (Content-Type: "
                                       "application/json) or multipart/form-data",
                                       supported=["application/json", "multipart/form-data"])
        if not raw.strip():
            raise InvalidRequest("the request has no body: send a JSON object (at least {})")
        body, images = await run_in_threadpool(_from_json, raw, schema)
    else:
        raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}",
                                   supported=["application/json", "multipart/form-data"])
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
