"""Bounds on the heavy work in flight, so that no caller starves the others and memory stays capped.

Under uvicorn (`make run`) many requests share one process: each image request (analyze, edit, generate,
interpolate) takes a slot for its whole life, and reserves the pixels it decodes or produces against a budget.
Past either bound the request is refused at once with `503 busy` and `Retry-After`, before its body is read or
its image decoded, rather than queueing behind the others. On Lambda a container serves one request at a time,
so the bounds are never reached there.

MAX_HEAVY_REQUESTS (default 4) and MAX_PIXELS_IN_FLIGHT (default 60 million: one image at the 40 MP limit plus
smaller ones) set them (handler/config.py).
"""

import threading
from functools import lru_cache

from handler.config import get_settings
from handler.errors import Busy

RETRY_AFTER_SECONDS = 1


class WorkLimiter:
    def __init__(self, *, max_requests: int, max_pixels: int):
        self.max_requests, self.max_pixels = max_requests, max_pixels
        self._lock = threading.Lock()  # reservations are made from worker threads too
        self.requests = 0
        self.pixels = 0

    def enter(self) -> "Ticket":
        """A slot for one request, or Busy. Never waits."""
        with self._lock:
            if self.requests >= self.max_requests:
                raise Busy(f"the service is busy with {self.requests} other image requests; retry in "
                           f"{RETRY_AFTER_SECONDS} s", retry_after=RETRY_AFTER_SECONDS)
            self.requests += 1
        return Ticket(self)

    def _reserve(self, pixels: int) -> None:
        with self._lock:
            # One request alone may always use the whole budget (the image limits keep it below that).
            if self.pixels and self.pixels + pixels > self.max_pixels:
                raise Busy(f"the service is busy with other large images ({self.pixels} pixels in flight); "
                           f"retry in {RETRY_AFTER_SECONDS} s", retry_after=RETRY_AFTER_SECONDS)
            self.pixels += pixels

    def _release(self, pixels: int, slot: bool) -> None:
        with self._lock:
            self.pixels -= pixels
            self.requests -= int(slot)


class Ticket:
    """One request's slot and pixel reservations; release() gives them all back (once)."""

    def __init__(self, limiter: WorkLimiter):
        self.limiter = limiter
        self.pixels = 0
        self._held = True

    def reserve(self, pixels: int) -> None:
        """Count `pixels` (width * height of an image about to be decoded or produced) against the budget, or Busy."""
        if pixels > 0:
            self.limiter._reserve(pixels)
            self.pixels += pixels

    def release(self) -> None:
        if self._held:
            self._held = False
            self.limiter._release(self.pixels, slot=True)
            self.pixels = 0


@lru_cache(maxsize=1)
def get_limiter() -> WorkLimiter:
    settings = get_settings()
    return WorkLimiter(max_requests=settings.max_heavy_requests, max_pixels=settings.max_pixels_in_flight)
