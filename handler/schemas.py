"""Request and response bodies, named by role. Images arrive as JSON `image_base64`, as a multipart file, or as an
`image_url` the service fetches (handler/fetch.py)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EditValue = float | str  # a target presence in [0, 1], or a signed change such as "+0.3"
FaceChoice = Literal["largest", "all"] | int
Output = Literal["inline", "url"] | None
OUTPUT_DESCRIPTION = ("\"url\": store the result in the results bucket and return a presigned `image_url` with "
                      "`expires_at` (JSON); default \"inline\": the result in the response")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageRequest(_Request):
    image_base64: str | None = Field(None, description="the photo, base64 (a data: URL prefix is accepted)")
    image_url: str | None = Field(None, max_length=2048, description="or an http(s) URL of the photo to fetch")


class AnalyzeRequest(ImageRequest):
    pass


class EditRequest(ImageRequest):
    edits: dict[str, EditValue] = Field(
        ..., description="attribute (CelebA name or alias) -> target presence 0..1, or a change like \"+0.3\"",
        examples=[{"Smiling": 1.0, "Eyeglasses": 1.0}])
    face: FaceChoice = Field("largest", description="\"largest\", \"all\", or a face index from /v1/analyze")
    strength: float = Field(1.0, ge=0.0, le=3.0, description="scales every change; above 1 exaggerates")
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
    attributes: dict[str, EditValue] = Field(default_factory=dict, examples=[{"Smiling": 1.0, "blond": 1.0}],
                                             description="attributes of the new faces; others at their usual rate")
    count: int = Field(1, ge=1, description="number of faces")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="same seed and attributes -> same faces")
    size: int = Field(256, ge=64, le=512, description="side of each face in pixels")
    format: Literal["png", "jpeg", "jpg", "webp"] = "png"
    response: Literal["image", "json"] | None = None
    output: Output = Field(None, description=OUTPUT_DESCRIPTION)


class InterpolateRequest(ImageRequest):
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


class AttributesResponse(BaseModel):
    attributes: list[AttributeInfo]
    analyze_only: list[str] = Field(description="predicted by /v1/analyze but not editable")
    strength_range: list[float]
    model: ModelInfo


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
