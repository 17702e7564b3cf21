"""Domain errors. Each carries its HTTP status and a machine-readable code; the app renders them as
{"error": {"code": ..., "message": ..., **details}}."""


class ApiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class NoFaceFound(ApiError):
    status_code = 422
    code = "no_face"


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
