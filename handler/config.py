"""Service settings, read once from the environment (pydantic-settings) and checked against their bounds, so that a
bad value stops the service at start-up with the variable's name rather than failing a request later.
README.md ("Settings") lists every variable with its default."""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "layers" / "model"
MAX_RESULT_URL_TTL = 24 * 3600  # the results bucket deletes objects after one day
LAMBDA_MAX_SECONDS = 900  # the longest a Lambda invocation can run


def env(name: str, default, description: str, **bounds):
    """A setting read from the environment variable `name` (exactly; the field name is accepted too, for tests)."""
    return Field(default, validation_alias=AliasChoices(name), description=description, **bounds)


class SettingsError(ValueError):
    """One or more environment variables hold values the service cannot run with."""


class Settings(BaseSettings):
    # Empty variables count as unset (a template parameter left blank gets the default); unknown ones are ignored.
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore", populate_by_name=True)

    model_dir: Path = env("MODEL_DIR", DEFAULT_MODEL_DIR, "folder with cvae.torchscript.pt and model_card.json")
    max_image_bytes: int = env("MAX_IMAGE_BYTES", 10 * 1024 * 1024, "encoded upload size, bytes", ge=1)
    max_image_pixels: int = env("MAX_IMAGE_PIXELS", 40_000_000, "decoded width * height", ge=1)
    # Lambda's 6 MB response limit applies after base64 (x 4/3), so about 4.5 MB of result at most.
    max_response_bytes: int = env("MAX_RESPONSE_BYTES", 4_400_000, "encoded result, bytes", ge=1)
    max_faces: int = env("MAX_FACES", 8, "faces edited in one request with face=\"all\"", ge=1, le=100)
    max_generate: int = env("MAX_GENERATE", 16, "faces per /v1/generate call", ge=1, le=100)
    max_frames: int = env("MAX_FRAMES", 30, "frames per /v1/interpolate call", ge=2, le=300)
    torch_threads: int = env("TORCH_THREADS", 0, "torch's intra-op threads; 0: torch's default (all vCPUs)",
                             ge=0, le=256)
    # handler/limits.py: past either bound an image request gets 503 busy at once (many requests share a process
    # under uvicorn; a Lambda container serves one at a time)
    max_heavy_requests: int = env("MAX_HEAVY_REQUESTS", 4, "image requests in flight at once", ge=1, le=1024)
    max_pixels_in_flight: int = env("MAX_PIXELS_IN_FLIGHT", 60_000_000,
                                    "decoded and produced pixels those requests hold together (the memory cap)", ge=1)
    # image_url fetches (handler/fetch.py)
    url_connect_timeout: float = env("URL_CONNECT_TIMEOUT", 3.0, "seconds to connect to the image host",
                                     gt=0, le=LAMBDA_MAX_SECONDS)
    url_read_timeout: float = env("URL_READ_TIMEOUT", 5.0, "seconds a single read may wait for data",
                                  gt=0, le=LAMBDA_MAX_SECONDS)
    url_total_timeout: float = env("URL_TOTAL_TIMEOUT", 10.0, "seconds for the whole fetch, redirects included",
                                   gt=0, le=LAMBDA_MAX_SECONDS)
    url_max_redirects: int = env("URL_MAX_REDIRECTS", 3, "redirects followed", ge=0, le=20)
    # AWS resources; each feature is off while its variable is unset (e.g. under `make run`)
    results_bucket: str | None = env("RESULTS_BUCKET", None, "\"output\": \"url\" stores results here")
    result_url_ttl: int = env("RESULT_URL_TTL_SECONDS", 3600, "seconds a presigned result URL stays valid "
                              "(at most a day: the bucket's lifecycle)", ge=1, le=MAX_RESULT_URL_TTL)
    usage_table: str | None = env("USAGE_TABLE", None, "per-API-key monthly call counters")
    idempotency_table: str | None = env("IDEMPOTENCY_TABLE", None,
                                        "stored results of calls made with an Idempotency-Key header")
    idempotency_ttl: int = env("IDEMPOTENCY_TTL_SECONDS", 3600, "seconds an Idempotency-Key is remembered",
                               ge=1, le=7 * 24 * 3600)

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings from os.environ, or SettingsError naming every bad variable and what it must be."""
        try:
            return cls()
        except ValidationError as err:
            problems = []
            for e in err.errors():
                name = ".".join(str(part) for part in e["loc"]) or "settings"
                problems.append(f"{name}={e['input']!r}: {e['msg']}" if "input" in e and not isinstance(
                    e["input"], dict) else f"{name}: {e['msg']}")
            raise SettingsError("invalid environment for the Face Interpolator service: " + "; ".join(problems)
                                + " (README.md, Settings, lists every variable)") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
