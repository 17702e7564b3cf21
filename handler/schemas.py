"""Request and response bodies, named by role. Images arrive as JSON `image_base64`, as a multipart file, or as an
`image_url` the service fetches (handler/fetch.py)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handler.errors import CODES, GATEWAY_CODES

EditValue = float | str  # a target presence in [0, 1], or a signed change such as "+0.3"
FaceChoice = Literal["largest", "all"] | Annotated[int, Field(ge=0, le=255)]
Output = Literal["inline", "url"] | None
OUTPUT_DESCRIPTION = ("\"url\": store the result in the results bucket and return a presigned `image_url` with "
                      "`expires_at` (JSON); default \"inline\": the result in the response")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


class ImageRequest(_Request):
    image_base64: str | None = Field(None, description="the photo, base64 (a data: URL prefix is accepted)")
    image_url: str | None = Field(None, max_length=2048, description="or an http(s) URL of the photo to fetch")


class AnalyzeRequest(ImageRequest):
    model_config = _examples({"image_url": "https://example.com/portrait.jpg"})


class EditRequest(ImageRequest):
    model_config = _examples(
        {"image_url": "https://example.com/portrait.jpg", "edits": {"smile": 1.0, "glasses": 1.0}},
        {"image_base64": "<base64 of a JPEG or PNG>", "edits": {"Smiling": 1.0, "age": "+0.3"}, "face": "largest",
         "strength": 1.0, "format": "jpeg", "response": "json"})

    edits: dict[str, EditValue] = Field(
        ..., description="attribute (CelebA name or alias) -> target presence 0..1, or a change like \"+0.3\"",
        examples=[{"Smiling": 1.0, "Eyeglasses": 1.0}])
    face: FaceChoice = Field("largest", description="\"largest\", \"all\", or a face index from /v1/analyze")
    strength: float = Field(1.0, ge=0.0, le=3.0,
                            description="scales every change; above 1 exaggerates, up to the model's condition limit")
    format: Literal["png", "jpeg", "jpg", "webp"] | None = Field(
        None, description="output format; default from Accept, else the input's format (png if it has none)")
    response: Literal["image", "json"] | None = Field(
        None, description="\"json\" for base64 plus measured attributes; default from Accept, else image bytes")
    output: Output = Field(None, description=OUTPUT_DESCRIPTION)

    @field_validator("edits")
    @classmethod
    def _not_empty(cls, v: dict) -> dict:
        if not v:
            raise ValueError("give at least one attribute to edit")
        return v


class GenerateRequest(_Request):
    model_config = _examples({"attributes": {"smile": 1.0, "blond": 1.0}, "count": 4, "seed": 7, "size": 256})

    attributes: dict[str, EditValue] = Field(default_factory=dict, examples=[{"Smiling": 1.0, "blond": 1.0}],
                                             description="attributes of the new faces; the others are those of a "
                                                         "real face that fits them")
    count: int = Field(1, ge=1, description="number of faces")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="same seed and attributes -> same faces")
    size: int = Field(256, ge=64, le=512, description="side of each face in pixels")
    format: Literal["png", "jpeg", "jpg", "webp"] = "png"
    response: Literal["image", "json"] | None = None
    output: Output = Field(None, description=OUTPUT_DESCRIPTION)


class InterpolateRequest(ImageRequest):
    model_config = _examples(
        {"image_url": "https://example.com/portrait.jpg", "end": {"smile": 1.0}, "frames": 8, "format": "gif"},
        {"image_url": "https://example.com/a.jpg", "image2_url": "https://example.com/b.jpg", "frames": 12,
         "format": "webp"})

    image2_base64: str | None = Field(None, description="a second photo: morph between the two largest faces")
    image2_url: str | None = Field(None, max_length=2048, description="or an http(s) URL of the second photo")
    start: dict[str, EditValue] = Field(default_factory=dict, description="attribute setting of the first frame")
    end: dict[str, EditValue] = Field(default_factory=dict, description="attribute setting of the last frame")
    frames: int = Field(8, ge=2, description="number of frames including both ends")
    face: FaceChoice = "largest"
    strength: float = Field(1.0, ge=0.0, le=3.0)
    size: int = Field(256, ge=64, le=512, description="face size for the two-photo morph")
    max_side: int = Field(512, ge=64, le=1024, description="photo frames are downscaled to this longer side")
    format: Literal["gif", "webp", "png"] = Field("gif", description="animated gif/webp, or a png strip")
    duration_ms: int = Field(120, ge=20, le=2000, description="time each frame is shown")
    response: Literal["image", "json"] | None = None
    output: Output = Field(None, description=OUTPUT_DESCRIPTION)


class FaceAttributes(BaseModel):
    index: int
    box: list[int] = Field(description="[x, y, w, h] in the photo's pixels")
    attributes: dict[str, float]
    score: float | None = Field(None, description="face detector confidence, 0..1")
    landmarks: dict[str, list[float]] | None = Field(
        None, description="[x, y] in the photo's pixels of left_eye, right_eye, nose, mouth_left, mouth_right "
                          "(left and right as seen in the photo)")


class FaceEdit(BaseModel):
    index: int
    box: list[int]
    attributes_before: dict[str, float]
    attributes_after: dict[str, float]


class ModelInfo(BaseModel):
    version: str
    resolution: int


class AnalyzeResponse(BaseModel):
    faces: list[FaceAttributes]
    model: ModelInfo


class StoredResult(BaseModel):
    """A result is either inline (`image_base64`) or, with "output": "url", a presigned URL and its expiry."""
    image_base64: str | None = None
    image_url: str | None = Field(None, description="presigned GET URL of the result (\"output\": \"url\")")
    expires_at: str | None = Field(None, description="when image_url stops working, ISO 8601 UTC")


class EditResponse(StoredResult):
    content_type: str
    width: int
    height: int
    faces: list[FaceEdit]
    model: ModelInfo


class GenerateResponse(BaseModel):
    images_base64: list[str] | None = None
    image_urls: list[str] | None = Field(None, description="presigned GET URLs, one a face (\"output\": \"url\")")
    expires_at: str | None = None
    content_type: str
    seed: int
    model: ModelInfo


class InterpolateResponse(StoredResult):
    content_type: str
    frames: int
    model: ModelInfo


class AttributeInfo(BaseModel):
    name: str
    group: str
    aliases: list[dict]
    range: list[float] = Field(description="target presence: 0 absent, 1 present")
    delta_range: list[float] = Field(description="a change of presence, sent as a signed string such as \"+0.3\"")
    edit_accuracy: float | None = Field(
        None, description="share of edits of this attribute on the CelebA test split that independent classifiers "
                          "saw take effect (the smaller of two judges' readings); null where not measured")
    experimental: bool = Field(False, description="measured edit accuracy below 0.5: expect many edits to miss")


class AttributesResponse(BaseModel):
    attributes: list[AttributeInfo]
    analyze_only: list[str] = Field(description="predicted by /v1/analyze but not editable")
    strength_range: list[float]
    model: ModelInfo


# Every code the service or API Gateway answers (handler/errors.py registers them by status).
ErrorCode = Literal[tuple(sorted(set().union(*CODES.values(), *GATEWAY_CODES.values())))]


class ErrorBody(BaseModel):
    """The machine-readable `code`, a message for people, and details that depend on the code (`problems` for
    invalid_request, `valid` and `aliases` for unknown_attribute, `limit_bytes`, `retry_after_seconds`, ...)."""
    model_config = ConfigDict(extra="allow")
    code: ErrorCode
    message: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": {"code": "no_face", "message": "no face was found in the image; send a photo with a clearly "
                                                 "visible, roughly frontal face at least about 40 pixels wide"}}]})
    error: ErrorBody
