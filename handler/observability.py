"""Powertools logger, tracer and metrics: created once here and imported everywhere else.

Powertools' Tracer imports the X-Ray SDK and patches botocore and friends when it is built, even where it then
switches itself off (outside Lambda, under `sam local`, or with POWERTOOLS_TRACE_DISABLED): about 0.3 s of a cold
start on an idle core for nothing. So the real Tracer is built only where it would trace; elsewhere `tracer` is a
stand-in whose decorators return the function unchanged.
"""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

SERVICE = "face-interpolator"


def tracing_enabled() -> bool:
    """Powertools' own rule: in Lambda, not in an emulator, and not switched off by POWERTOOLS_TRACE_DISABLED."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_emulator = os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV)
    return bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV)) and not in_emulator


class NoTracer:
    """Tracer's decorators and annotations where nothing is traced."""

    disabled = True

    @staticmethod
    def _passthrough(function=None, **_options):
        return function if function is not None else (lambda f: f)

    capture_method = capture_lambda_handler = _passthrough

    def put_annotation(self, key, value) -> None:
        pass

    def put_metadata(self, key, value, namespace=None) -> None:
        pass


logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE) if tracing_enabled() else NoTracer()
metrics = Metrics(service=SERVICE, namespace="FaceInterpolator")
