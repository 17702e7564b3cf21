"""Service settings, read once from the environment."""

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "layers" / "model"


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
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
