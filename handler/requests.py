"""Reads a request body (JSON, JSON without a Content-Type, or multipart form) into a schema plus image bytes."""

import base64
import binascii
import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from handler.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

T = TypeVar("T", bound=BaseModel)

# multipart file field -> JSON base64 field holding the same image
IMAGE_FIELDS = {"image": "image_base64", "image2": "image2_base64"}
BASE64_OVERHEAD = 4 / 3


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
    elif content_type in ("", "application/json", "text/plain") or content_type.endswith("+json"):
        # No-code tools sometimes send JSON without a Content-Type (or as text/plain).
        raw = await request.body()
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
    return body, images


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
