"""Service settings, read once from the environment."""

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "layers" / "model"
MAX_RESULT_URL_TTL = 24 * 3600  # the results bucket deletes objects after one day


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    max_image_bytes: int  # encoded upload size
    max_image_pixels: int  # decoded width * height
    max_response_bytes: int  # encoded result; Lambda's 6 MB response limit applies after base64 (x 4/3)
    max_faces: int  # faces edited in one request with face="all"
    max_generate: int  # faces per /v1/generate call
    max_frames: int  # frames per /v1/interpolate call
    torch_threads: int
    # image_url fetches (handler/fetch.py)
    url_connect_timeout: float  # seconds to connect to the image host
    url_read_timeout: float  # seconds a single read may wait for data
    url_total_timeout: float  # seconds for the whole fetch, redirects included
    url_max_redirects: int
    # AWS resources; each feature is off while its variable is unset (e.g. under `make run`)
    results_bucket: str | None  # "output": "url" stores results here
    result_url_ttl: int  # seconds a presigned result URL stays valid (at most a day: the bucket's lifecycle)
    usage_table: str | None  # per-API-key monthly call counters
    idempotency_table: str | None  # stored results of calls made with an Idempotency-Key header
    idempotency_ttl: int  # seconds an Idempotency-Key is remembered

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls(
            model_dir=Path(env.get("MODEL_DIR", DEFAULT_MODEL_DIR)),
            max_image_bytes=int(env.get("MAX_IMAGE_BYTES", 10 * 1024 * 1024)),
            max_image_pixels=int(env.get("MAX_IMAGE_PIXELS", 40_000_000)),
            max_response_bytes=int(env.get("MAX_RESPONSE_BYTES", 4_400_000)),
            max_faces=int(env.get("MAX_FACES", 8)),
            max_generate=int(env.get("MAX_GENERATE", 16)),
            max_frames=int(env.get("MAX_FRAMES", 30)),
            torch_threads=int(env.get("TORCH_THREADS", 0)),  # 0: torch's default (all vCPUs)
            url_connect_timeout=float(env.get("URL_CONNECT_TIMEOUT", 3)),
            url_read_timeout=float(env.get("URL_READ_TIMEOUT", 5)),
            url_total_timeout=float(env.get("URL_TOTAL_TIMEOUT", 10)),
            url_max_redirects=int(env.get("URL_MAX_REDIRECTS", 3)),
            results_bucket=env.get("RESULTS_BUCKET") or None,
            result_url_ttl=min(int(env.get("RESULT_URL_TTL_SECONDS", 3600)), MAX_RESULT_URL_TTL),
            usage_table=env.get("USAGE_TABLE") or None,
            idempotency_table=env.get("IDEMPOTENCY_TABLE") or None,
            idempotency_ttl=int(env.get("IDEMPOTENCY_TTL_SECONDS", 3600)),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
