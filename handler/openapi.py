"""The OpenAPI document as clients, `/docs` and fuzzers read it: named request components for JSON and multipart
with examples, every status an operation can answer with the error body (its `code` an enum), the `x-api-key`
security scheme and the `Idempotency-Key` header of the deployed stage."""

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from handler.errors import CODES, GATEWAY_CODES
from handler.schemas import ErrorResponse

API_KEY_SCHEME = "ApiKey"
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
STATUS_TEXT = {
    400: "The body could not be read (a broken multipart body)",
    403: "Deployed: no valid `x-api-key` (answered by API Gateway)",
    406: "The `Accept` header asks for an image type the service cannot produce",
    409: "A retry with the same `Idempotency-Key` while the first call runs, or whose result was too large to keep",
    413: "The body, the image or the result is too large",
    415: "Not an image the service reads, or a body that is neither JSON nor multipart",
    422: "The request is well-formed but cannot be processed",
    429: "Deployed: over the usage plan's throttle or quota (answered by API Gateway)",
    500: "An unexpected error (logged)",
    502: "The image at `image_url` could not be fetched",
    503: "Busy (retry after `Retry-After` seconds), or a backing service is unavailable",
    504: "The image at `image_url` took too long, or (deployed) the request took over 29 s",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Deployed: a retry with the same key (and the same body) within an hour gets the first call's "
                   "response, with `Idempotent-Replayed: true`, and is billed once. Ignored where the service has no "
                   "idempotency table (`make run`).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "example": "job-1234"}
FORM_EXAMPLES = {"edits": '{"smile": 1.0, "glasses": 1.0}', "start": "{}", "end": '{"smile": 1.0}',
                 "attributes": '{"smile": 1.0}'}


def error_responses(*statuses: int) -> dict:
    """FastAPI `responses=` for these statuses: the error body, and which codes each status carries."""
    out = {}
    for status in statuses:
        codes = sorted(CODES.get(status, set()) | GATEWAY_CODES.get(status, set()))
        description = STATUS_TEXT.get(status, "Error") + ". Codes: " + ", ".join(f"`{c}`" for c in codes)
        out[status] = {"model": ErrorResponse, "description": description}
        if status in (429, 503):
            out[status]["headers"] = RETRY_AFTER
    return out


def form_name(schema: type[BaseModel]) -> str:
    return schema.__name__.removesuffix("Request") + "Form"


def form_schema(schema: type[BaseModel]) -> dict:
    """The multipart twin of a JSON request: images as files, JSON objects as text, the rest as form fields."""
    json_schema = schema.model_json_schema()
    properties = {}
    for name, prop in json_schema["properties"].items():
        if name.endswith("_base64"):
            field = name.removesuffix("_base64")
            properties[field] = {"type": "string", "format": "binary", "description": f"the photo file ({field})"}
        elif prop.get("type") == "object" or "additionalProperties" in prop:
            properties[name] = {"type": "string", "description": "JSON object as text. " + prop.get("description", ""),
                                "example": FORM_EXAMPLES.get(name, "{}")}
        else:
            properties[name] = prop
    out = {"title": form_name(schema), "type": "object", "properties": properties, "additionalProperties": False}
    if json_schema.get("required"):
        out["required"] = json_schema["required"]
    return out


def request_body(schema: type[BaseModel]) -> dict:
    """openapi_extra for a route whose body read_request reads: JSON or multipart, both named components."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema.__name__}"}},
        "multipart/form-data": {"schema": {"$ref": f"#/components/schemas/{form_name(schema)}"}}}},
        "parameters": [IDEMPOTENCY_HEADER]}


def install(app: FastAPI, request_schemas: list[type[BaseModel]], protected_prefix: str = "/v1/") -> None:
    """Replace app.openapi with one that adds the request components and the API key scheme."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                           tags=app.openapi_tags)
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for schema in request_schemas:
            json_schema = schema.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(json_schema.pop("$defs", {}))
            schemas[schema.__name__] = json_schema
            schemas[form_name(schema)] = form_schema(schema)
        components["securitySchemes"] = {API_KEY_SCHEME: {
            "type": "apiKey", "in": "header", "name": "x-api-key",
            "description": "Deployed: the API key from API Gateway's usage plan. Not checked under `make run`."}}
        for path, operations in spec["paths"].items():
            if path.startswith(protected_prefix):
                for operation in operations.values():
                    operation["security"] = [{API_KEY_SCHEME: []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi
