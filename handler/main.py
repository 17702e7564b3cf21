"""The Lambda entry point: Mangum adapts API Gateway (REST, payload v1) events to the FastAPI app; Powertools
adds structured logs with the request id as correlation id, X-Ray tracing, and CloudWatch metrics.
Around the app: idempotent retries (handler/idempotency.py) and per-key metering of successful calls
(handler/metering.py), each on only when its table is configured."""

import gc
import time

# The init phase (the imports below, torch's above all, and the model) allocates ~300k objects that live as long as
# the process and leaves next to no garbage, yet the cyclic collector's passes over them took ~0.17 s of a cold
# start. So it is off until the model is loaded (the end of the init phase, below).
_collecting = gc.isenabled()
gc.disable()

from aws_lambda_powertools.logging import correlation_paths  # noqa: E402  (all imports after gc.disable)
from aws_lambda_powertools.metrics import MetricUnit  # noqa: E402
from mangum import Mangum  # noqa: E402

from handler import metering  # noqa: E402
from handler.app import app, get_editor  # noqa: E402
from handler.idempotency import HEADER as IDEMPOTENCY_HEADER  # noqa: E402
from handler.idempotency import Outcome, get_idempotency, header_of  # noqa: E402
from handler.observability import logger, metrics, tracer  # noqa: E402

# Load the model during the init phase (full CPU, not billed against the first request's timeout budget).
get_editor()
# What the init phase left is frozen (moved out of the collector's view: never scanned again) before collection
# resumes; re-enabled without it, the first request paid one pass over all of it (~0.1 s). Requests' own garbage is
# collected as before.
gc.freeze()
if _collecting:
    gc.enable()


class StagePrefix:
    """Sets the ASGI root_path to the API Gateway stage prefix ("/prod"), so /docs points its browser at
    /prod/openapi.json. Behind a custom domain without a prefix, requestContext.path equals path and nothing changes."""

    def __init__(self, asgi_app):
        self.app = asgi_app

    async def __call__(self, scope, receive, send):
        event = scope.get("aws.event") or {}
        public_path = (event.get("requestContext") or {}).get("path") or ""
        path = event.get("path") or ""
        if path == "/" and public_path and not public_path.endswith("/"):
            public_path += "/"  # the stage root without its slash ("/prod") is the page at "/"
        if scope["type"] == "http" and path and public_path.endswith(path) and public_path != path:
            # ASGI: `path` includes `root_path`; Starlette strips the prefix again when routing.
            prefix = public_path[: -len(path)]
            scope = {**scope, "root_path": prefix, "path": prefix + scope["path"],
                     "raw_path": (prefix + scope["path"]).encode()}
        await self.app(scope, receive, send)


asgi_handler = Mangum(StagePrefix(app), lifespan="off", api_gateway_base_path="/")


def serve(event: dict, context) -> dict:
    """The app's response; a retry with a known Idempotency-Key gets the stored one. Meters what ran and succeeded:
    once per call, never a replay."""
    key = header_of(event, IDEMPOTENCY_HEADER)
    idempotency = get_idempotency() if key is not None else None
    if idempotency is not None:
        outcome = idempotency.run(event, context, asgi_handler, key)
    else:
        outcome = Outcome(asgi_handler(event, context), executed=True)
    if outcome.executed and 200 <= outcome.response.get("statusCode", 500) < 300:
        metering.record_call(event)
    return outcome.response


@metrics.log_metrics(capture_cold_start_metric=True)  # outermost, so metrics flush after everything else
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def handler(event: dict, context) -> dict:
    started = time.perf_counter()
    response = serve(event, context)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    logger.info("request done", extra={"path": event.get("path"), "status": response.get("statusCode")})
    return response
