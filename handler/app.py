"""The FastAPI app: thin routes that validate, call the Editor, and map domain errors to JSON.

Heavy requests (analyze, edit, generate, interpolate) each hold a slot of handler/limits.py while they run, and do
their CPU work (decoding, the model, encoding, base64, JSON of large bodies) in worker threads, so the event loop
keeps answering (/healthz, other callers) and a caller past the bound gets 503 `busy` at once."""

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from handler import openapi
from handler.artifact import load_model
from handler.attributes import EXPERIMENTAL_BELOW, NOT_EDITABLE, measured_edit_accuracy
from handler.config import get_settings
from handler.editor import MAX_STRENGTH, Editor
from handler.errors import ApiError, IdempotencyKeyInvalid, InvalidRequest, NotAcceptable, ResultTooLarge
from handler.idempotency import HEADER as IDEMPOTENCY_HEADER
from handler.idempotency import KEY_CHARACTERS, MAX_KEY_LENGTH
from handler.imaging import (DecodedImage, decode_image, encode_animation, encode_image, estimate_encoded_size,
                             fit_within, image_size, strip)
from handler.limits import Ticket, get_limiter
from handler.observability import logger, metrics
from handler.requests import read_request
from handler.schemas import (AnalyzeRequest, AnalyzeResponse, AttributeInfo, AttributesResponse, EditRequest,
                             EditResponse, FaceAttributes, FaceEdit, GenerateRequest, GenerateResponse,
                             InterpolateRequest, InterpolateResponse, ModelInfo)
from handler.storage import ResultStore, get_result_store
from handler.web import mount_page

API_DESCRIPTION = """Edit the face in a photo by named attributes, generate new faces, and interpolate between them.

Images go in as JSON `image_base64`, as JSON `image_url` (fetched by the service), or as a multipart file field
`image`. `"output": "url"` returns a presigned `image_url` to the stored result instead of the image. Errors are JSON:
`{"error": {"code": "no_face", "message": "..."}}`."""

# Statuses every /v1 operation can answer (403/429 and 504 from API Gateway when deployed), then per operation.
COMMON_ERRORS = (403, 429, 500, 503, 504)
IMAGE_ERRORS = openapi.error_responses(400, 409, 413, 415, 422, 502, *COMMON_ERRORS)
ESTIMATE_MARGIN = 1.25  # refuse before encoding only when the estimate is this far over the limit


@lru_cache(maxsize=1)
def get_editor() -> Editor:
    """Loaded once per process (a Lambda container's cold start) and shared by every request."""
    settings = get_settings()
    model = load_model(settings.model_dir)
    logger.info("model loaded", extra={"model_version": model.version, "model_dir": str(settings.model_dir)})
    return Editor(model, max_faces=settings.max_faces, torch_threads=settings.torch_threads)


@asynccontextmanager
async def lifespan(_: FastAPI):
    get_editor()  # under uvicorn: load at start-up, not on the first request (Lambda: handler/main.py does it)
    yield


app = FastAPI(title="Face Interpolator", version="1.0.0", description=API_DESCRIPTION, lifespan=lifespan)
mount_page(app)  # the try-it page at / (handler/web.py, handler/static/)
openapi.install(app, [AnalyzeRequest, EditRequest, GenerateRequest, InterpolateRequest])


async def heavy_work(request: Request) -> AsyncIterator[Ticket]:
    """A slot for one image request (503 busy when none is free), released when the request is done. A malformed
    Idempotency-Key is refused first, wherever it is sent (handler/main.py stores results only when deployed)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and (not key or len(key) > MAX_KEY_LENGTH or not set(key) <= KEY_CHARACTERS):
        raise IdempotencyKeyInvalid(f"the {IDEMPOTENCY_HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII "
                                    "characters")
    ticket = get_limiter().enter()
    try:
        yield ticket
    finally:
        ticket.release()


EditorDep = Annotated[Editor, Depends(get_editor)]
WorkDep = Annotated[Ticket, Depends(heavy_work)]


# ---- errors: everything the client gets back is JSON with a machine-readable code ---------------------------
@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    logger.info("request refused", extra={"code": exc.code, "status": exc.status_code, "path": request.url.path})
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(InvalidRequest.from_validation(exc.errors()).body(), status_code=422)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    # exc.headers carries Allow on a 405
    return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                        headers=exc.headers)


@app.exception_handler(ClientDisconnect)
async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
    """The caller left before its body arrived: nobody reads the answer, and it is not a server error."""
    logger.info("client disconnected", extra={"path": request.url.path})
    return Response(status_code=499)  # nginx's "client closed request"; only logs see it


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse({"error": {"code": "internal_error", "message": "unexpected error; it has been logged"}},
                        status_code=500)


# ---- helpers shared by the routes ---------------------------------------------------------------------------
def model_info(editor: Editor) -> ModelInfo:
    return ModelInfo(version=editor.model.version, resolution=editor.size)


def require_image(images: dict[str, bytes], work: Ticket, field: str = "image") -> DecodedImage:
    """Decode an image (in a worker thread), its pixels reserved against the memory budget first."""
    if field not in images:
        raise InvalidRequest(f"no image: send JSON {field}_base64 or {field}_url, or a multipart file field {field!r}",
                             field=field)
    settings = get_settings()
    width, height = image_size(images[field])
    if width * height <= settings.max_image_pixels:  # larger: decode_image refuses it without decoding
        work.reserve(width * height)
    return decode_image(images[field], max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)


def wants_json(response_field: str | None, accept: str) -> bool:
    if response_field is not None:
        return response_field == "json"
    accept = accept.lower()
    return "application/json" in accept and "image/" not in accept


def output_format(format_field: str | None, accept: str, source_format: str) -> tuple[str, bool]:
    """-> (format, whether the caller chose it) from the `format` field, else Accept, else the input's format."""
    if format_field:
        return format_field, True
    accept = accept.lower()
    for fmt in ("png", "jpeg", "webp"):
        if f"image/{fmt}" in accept:
            return fmt, True
    if "image/" in accept and not any(w in accept for w in ("image/*", "*/*", "application/json")):
        raise NotAcceptable(f"cannot produce {accept}", supported=["image/png", "image/jpeg", "image/webp"])
    return (source_format if source_format in ("png", "jpeg", "webp") else "png"), False


def check_response_size(data: bytes, what: str, advice: str) -> None:
    """Refuse, with advice, a result larger than Lambda can return (rather than failing inside Lambda)."""
    limit = get_settings().max_response_bytes
    if len(data) > limit:
        raise ResultTooLarge(f"{what} is {len(data)} bytes; responses are limited to {limit}. {advice}",
                             limit_bytes=limit)


def fit_format(rgb, fmt: str, *, chosen: bool, alpha=None, icc_profile: bytes | None = None) -> str:
    """The output format, settled before the work: a large photo whose format the caller did not choose goes to
    JPEG when PNG or WebP would not fit; a result estimated well over the limit is refused now, not after seconds
    of encoding."""
    limit = get_settings().max_response_bytes
    estimate = estimate_encoded_size(rgb, fmt, alpha=alpha, icc_profile=icc_profile)
    if estimate is None or estimate <= limit:
        return fmt
    if not chosen and fmt != "jpeg":
        return fit_format(rgb, "jpeg", chosen=True, icc_profile=icc_profile)
    if estimate > ESTIMATE_MARGIN * limit:
        raise ResultTooLarge(f"the result as {fmt} would be about {estimate} bytes; responses are limited to {limit}. "
                             "Ask for format jpeg or webp, or send a smaller photo", limit_bytes=limit,
                             estimated_bytes=estimate)
    return fmt


def encode_result(rgb, fmt: str, *, chosen: bool, alpha=None, icc_profile: bytes | None = None) -> tuple[bytes, str]:
    """Encode within the response limit. A large photo whose format the caller did not choose falls back from
    lossless PNG to JPEG; anything still too large is refused."""
    data, content_type = encode_image(rgb, fmt, alpha=alpha, icc_profile=icc_profile)
    if len(data) > get_settings().max_response_bytes and not chosen and fmt != "jpeg":
        data, content_type = encode_image(rgb, "jpeg", quality=90, icc_profile=icc_profile)
    check_response_size(data, f"the result as {fmt}", "Ask for format jpeg or webp, or send a smaller photo")
    return data, content_type


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def result_store(output: str | None) -> ResultStore | None:
    """The results bucket when the caller asked for "output": "url" (refused with 503 before any work when there is
    none), else None: nothing is stored."""
    return get_result_store() if output == "url" else None


def result_fields(store: ResultStore | None, data: bytes, content_type: str) -> dict:
    """The result inline as base64, or stored and given as a presigned URL with its expiry (worker thread)."""
    if store is None:
        return {"image_base64": b64(data)}
    stored = store.put(data, content_type)
    return {"image_url": stored.url, "expires_at": stored.expires_at}


def json_response(model) -> JSONResponse:
    """Rendered where it is built: in the worker thread, for bodies with megabytes of base64."""
    return JSONResponse(model.model_dump(exclude_none=True))


# ---- routes -------------------------------------------------------------------------------------------------
@app.get("/healthz", tags=["service"], operation_id="healthz", summary="Liveness")
async def healthz() -> dict:
    """Answered on the event loop, without a worker thread: it stays quick while heavy requests run."""
    return {"status": "ok"}


@app.get("/v1/attributes", response_model=AttributesResponse, tags=["faces"], operation_id="attributes",
         summary="Editable attributes, aliases and ranges", responses=openapi.error_responses(*COMMON_ERRORS))
async def attributes(editor: EditorDep) -> AttributesResponse:
    catalog = editor.catalog
    aliases = catalog.aliases_by_name()
    measured = measured_edit_accuracy(editor.model.card.get("metrics", {}))
    return AttributesResponse(
        attributes=[AttributeInfo(name=n, group=catalog.group_of(n), aliases=aliases[n], range=[0.0, 1.0],
                                  delta_range=[-1.0, 1.0], edit_accuracy=measured.get(n),
                                  experimental=measured.get(n, 1.0) < EXPERIMENTAL_BELOW)
                    for n in catalog.editable],
        analyze_only=sorted(NOT_EDITABLE & set(catalog.names)),
        strength_range=[0.0, MAX_STRENGTH], model=model_info(editor))


@app.post("/v1/analyze", response_model=AnalyzeResponse, responses=IMAGE_ERRORS, tags=["faces"],
          operation_id="analyze", summary="Find faces and score their 40 attributes",
          openapi_extra=openapi.request_body(AnalyzeRequest))
async def analyze(request: Request, editor: EditorDep, work: WorkDep) -> JSONResponse:
    body, images = await read_request(request, AnalyzeRequest, max_image_bytes=get_settings().max_image_bytes)
    return await run_in_threadpool(analyze_response, editor, work, images)


def analyze_response(editor: Editor, work: Ticket, images: dict[str, bytes]) -> JSONResponse:
    faces = editor.analyze(require_image(images, work).rgb)
    return json_response(AnalyzeResponse(
        faces=[FaceAttributes(index=f.index, box=list(f.face.box), attributes=f.before, score=round(f.face.score, 4),
                              landmarks=f.face.landmark_dict()) for f in faces],
        model=model_info(editor)))


@app.post("/v1/edit", responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                                       "model": EditResponse, "description": "the edited photo, or JSON"},
                                 **IMAGE_ERRORS, **openapi.error_responses(406)},
          tags=["faces"], operation_id="edit", summary="Edit the face in a photo by named attributes",
          openapi_extra=openapi.request_body(EditRequest))
async def edit(request: Request, editor: EditorDep, work: WorkDep) -> Response:
    body, images = await read_request(request, EditRequest, max_image_bytes=get_settings().max_image_bytes)
    return await run_in_threadpool(edit_response, editor, work, body, images, request.headers.get("accept", ""))


def edit_response(editor: Editor, work: Ticket, body: EditRequest, images: dict[str, bytes], accept: str) -> Response:
    planned = editor.plan(body.edits)  # refuse unknown attributes before decoding anything
    store = result_store(body.output)
    fmt, chosen = output_format(body.format, accept, None)  # 406 before decoding, too
    image = require_image(images, work)
    fmt, chosen = output_format(body.format, accept, image.source_format)
    fmt = fit_format(image.rgb, fmt, chosen=chosen, alpha=image.alpha, icc_profile=image.icc_profile)
    image_only = store is None and not wants_json(body.response, accept)  # no attributes_after to measure
    started = time.perf_counter()
    edited, faces = editor.edit(image.rgb, planned, which=body.face, strength=body.strength, measure=not image_only)
    metrics.add_metric(name="FacesEdited", unit="Count", value=len(faces))
    metrics.add_metric(name="EditModelMs", unit="Milliseconds", value=(time.perf_counter() - started) * 1000)
    data, content_type = encode_result(edited, fmt, chosen=chosen, alpha=image.alpha, icc_profile=image.icc_profile)
    if image_only:
        return Response(data, media_type=content_type, headers={"X-Faces-Edited": str(len(faces)),
                                                                "X-Model-Version": editor.model.version})
    return json_response(EditResponse(
        **result_fields(store, data, content_type), content_type=content_type, width=edited.shape[1],
        height=edited.shape[0], model=model_info(editor),
        faces=[FaceEdit(index=f.index, box=list(f.face.box), attributes_before=f.before, attributes_after=f.after)
               for f in faces]))


@app.post("/v1/generate", responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                                           "model": GenerateResponse,
                                           "description": "the faces side by side in the chosen format, or JSON"},
                                     **openapi.error_responses(400, 409, 413, 415, 422, *COMMON_ERRORS)},
          tags=["faces"], operation_id="generate", summary="New faces with chosen attributes",
          openapi_extra=openapi.request_body(GenerateRequest))
async def generate(request: Request, editor: EditorDep, work: WorkDep) -> Response:
    body, _ = await read_request(request, GenerateRequest, max_image_bytes=get_settings().max_image_bytes)
    return await run_in_threadpool(generate_response, editor, work, body, request.headers.get("accept", ""))


def generate_response(editor: Editor, work: Ticket, body: GenerateRequest, accept: str) -> Response:
    limit = get_settings().max_generate
    if body.count > limit:
        raise InvalidRequest(f"count must be at most {limit}", field="count", valid_range=[1, limit])
    planned = editor.plan(body.attributes)
    store = result_store(body.output)
    work.reserve(body.count * body.size * body.size)
    faces = editor.generate(planned, count=body.count, seed=body.seed, size=body.size)
    if store is not None or wants_json(body.response, accept):
        encoded = [encode_result(f, body.format, chosen=True) for f in faces]
        results = [result_fields(store, d, content_type) for d, content_type in encoded]
        if store is None:
            fields = {"images_base64": [r["image_base64"] for r in results]}
        else:
            fields = {"image_urls": [r["image_url"] for r in results], "expires_at": results[0]["expires_at"]}
        return json_response(GenerateResponse(**fields, content_type=encoded[0][1], seed=body.seed,
                                              model=model_info(editor)))
    data, content_type = encode_result(strip(faces), body.format, chosen=True)
    return Response(data, media_type=content_type, headers={"X-Model-Version": editor.model.version})


@app.post("/v1/interpolate", responses={200: {"content": {"image/gif": {}, "image/webp": {}, "image/png": {}},
                                              "model": InterpolateResponse,
                                              "description": "an animated GIF or WebP, a PNG strip, or JSON"},
                                        **IMAGE_ERRORS},
          tags=["faces"], operation_id="interpolate", summary="Animate a face between attribute settings or photos",
          openapi_extra=openapi.request_body(InterpolateRequest))
async def interpolate(request: Request, editor: EditorDep, work: WorkDep) -> Response:
    body, images = await read_request(request, InterpolateRequest, max_image_bytes=get_settings().max_image_bytes)
    return await run_in_threadpool(interpolate_response, editor, work, body, images,
                                   request.headers.get("accept", ""))


def interpolate_response(editor: Editor, work: Ticket, body: InterpolateRequest, images: dict[str, bytes],
                         accept: str) -> Response:
    settings = get_settings()
    if body.frames > settings.max_frames:
        raise InvalidRequest(f"frames must be at most {settings.max_frames}", field="frames",
                             valid_range=[2, settings.max_frames])
    plan_start, plan_end = editor.plan(body.start), editor.plan(body.end)
    store = result_store(body.output)
    if "image2" not in images and not body.start and not body.end:
        raise InvalidRequest("give `end` (and optionally `start`) attribute settings, or a second image")
    first = require_image(images, work)
    if "image2" in images:
        second = require_image(images, work, "image2")
        work.reserve(body.frames * body.size * body.size)
        frames = editor.interpolate_faces(first.rgb, second.rgb, frames=body.frames, size=body.size)
    else:
        photo = fit_within(first.rgb, body.max_side)
        work.reserve(body.frames * photo.shape[0] * photo.shape[1])
        frames = editor.interpolate_attributes(photo, plan_start, plan_end, frames=body.frames, which=body.face,
                                               strength=body.strength)
    if body.format == "png":
        data, content_type = encode_result(strip(frames), "png", chosen=True)
    else:
        data, content_type = encode_animation(frames, body.format, duration_ms=body.duration_ms)
        check_response_size(data, "the animation", "Use fewer frames or a smaller max_side/size")
    if store is not None or wants_json(body.response, accept):
        return json_response(InterpolateResponse(
            **result_fields(store, data, content_type), content_type=content_type, frames=len(frames),
            model=model_info(editor)))
    return Response(data, media_type=content_type, headers={"X-Model-Version": editor.model.version})
