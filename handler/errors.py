"""Domain errors. Each carries its HTTP status and a machine-readable code; the app renders them as
{"error": {"code": ..., "message": ..., **details}}. Every code is registered by status (CODES), so the OpenAPI
document lists them all as an enum."""

MAX_ECHO_CHARS = 200  # a string from the request quoted back in an error is cut to this length

# status -> codes, filled by every ApiError subclass; plus the codes the app answers without one
CODES: dict[int, set[str]] = {400: {"bad_request"}, 404: {"not_found"}, 405: {"method_not_allowed"},
                              500: {"internal_error"}}
# What API Gateway answers itself when deployed (template.yaml GatewayResponses), in the same shape.
GATEWAY_CODES: dict[int, set[str]] = {400: {"request_rejected"}, 403: {"invalid_api_key"}, 404: {"not_found"},
                                      413: {"payload_too_large"},
                                      415: {"unsupported_media_type"}, 429: {"throttled", "quota_exceeded"},
                                      504: {"timeout"}}


def safe_text(value):
    """A value quoted back to the caller, made encodable: lone surrogates (valid in JSON escapes, not in UTF-8)
    become \\udxxx escapes, long strings are cut. Dicts and lists are cleaned throughout."""
    if isinstance(value, str):
        if len(value) > MAX_ECHO_CHARS:
            value = value[:MAX_ECHO_CHARS] + "..."
        if not value.isascii():
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {safe_text(k): safe_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_text(v) for v in value]
    return value


class ApiError(Exception):
    status_code = 400
    code = "bad_request"
    headers: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        CODES.setdefault(cls.status_code, set()).add(cls.code)

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict:
        message = self.message if len(self.message) <= 1000 else self.message[:1000] + "..."
        if not message.isascii():
            message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        details = {k: safe_text(v) for k, v in self.details.items()}
        return {"error": {"code": self.code, "message": message, **details}}


class BadRequest(ApiError):
    """The request could not be read at all (a broken multipart body, say)."""
    status_code = 400
    code = "bad_request"


class Busy(ApiError):
    """Refused at once, before any work, while the server has as many heavy requests (or pixels) in flight as it
    is allowed: the caller retries after Retry-After seconds instead of waiting in a pile-up."""
    status_code = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 1, **details):
        super().__init__(message, retry_after_seconds=retry_after, **details)
        self.headers = {"Retry-After": str(retry_after)}


class NoFaceFound(ApiError):
    status_code = 422
    code = "no_face"


class FaceNotFrontal(ApiError):
    """Faces were found, but every one is turned too far from the camera for the model's frontal crop."""
    status_code = 422
    code = "face_not_frontal"


class FaceIndexOutOfRange(ApiError):
    status_code = 422
    code = "face_index_out_of_range"


class UnsupportedImage(ApiError):
    status_code = 415
    code = "unsupported_image"


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class ImageTooLarge(ApiError):
    status_code = 413
    code = "image_too_large"


class ResultTooLarge(ApiError):
    status_code = 413
    code = "result_too_large"


class UnknownAttribute(ApiError):
    status_code = 422
    code = "unknown_attribute"


class InvalidRequest(ApiError):
    status_code = 422
    code = "invalid_request"

    @classmethod
    def from_validation(cls, errors: list[dict]) -> "InvalidRequest":
        """From pydantic's errors(): every problem listed, the first one in the message."""
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in errors]
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        return cls(f"invalid request: {first['field']}: {first['problem']}", problems=problems)


class NotAcceptable(ApiError):
    status_code = 406
    code = "not_acceptable"


# ---- image_url fetches (handler/fetch.py): refusals are 4xx, failures of the remote host 502/504 ------------
class UrlInvalid(ApiError):
    status_code = 422
    code = "url_invalid"


class UrlSchemeNotAllowed(ApiError):
    status_code = 422
    code = "url_scheme_not_allowed"


class UrlHostNotAllowed(ApiError):
    status_code = 422
    code = "url_host_not_allowed"


class UrlTooManyRedirects(ApiError):
    status_code = 422
    code = "url_too_many_redirects"


class UrlTooLarge(ApiError):
    status_code = 413
    code = "url_too_large"


class UrlFetchFailed(ApiError):
    status_code = 502
    code = "url_fetch_failed"


class UrlTimeout(ApiError):
    status_code = 504
    code = "url_timeout"


# ---- results in S3, idempotency -----------------------------------------------------------------------------
class ResultsStorageUnavailable(ApiError):
    status_code = 503
    code = "results_storage_unavailable"


class IdempotencyKeyInvalid(ApiError):
    status_code = 422
    code = "idempotency_key_invalid"


class IdempotencyKeyReused(ApiError):
    status_code = 422
    code = "idempotency_key_reused"


class IdempotencyInProgress(ApiError):
    status_code = 409
    code = "idempotency_in_progress"


class IdempotentResultNotStored(ApiError):
    status_code = 409
    code = "idempotent_result_not_stored"


class IdempotencyUnavailable(ApiError):
    status_code = 503
    code = "idempotency_unavailable"
