"""The X-Ray tracer is built only where it traces: elsewhere the SDK is not even imported (cold start)."""

import os
import subprocess
import sys

from conftest import ROOT

PROBE = ("import sys, handler.observability as o; "
         "print(type(o.tracer).__name__, 'aws_xray_sdk.core' in sys.modules)")


def probe(**env) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "POWERTOOLS_TRACE_DISABLED")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**clean, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_outside_lambda_nothing_is_traced_and_the_sdk_is_not_imported():
    assert probe() == "NoTracer False"
    assert probe(LAMBDA_TASK_ROOT="/var/task", AWS_SAM_LOCAL="true") == "NoTracer False"
    assert probe(LAMBDA_TASK_ROOT="/var/task", POWERTOOLS_TRACE_DISABLED="1") == "NoTracer False"


def test_in_lambda_the_powertools_tracer_is_used():
    assert probe(LAMBDA_TASK_ROOT="/var/task") == "Tracer True"


def test_the_stand_in_decorators_return_the_function_itself():
    from handler.observability import NoTracer

    def f():
        return 1

    t = NoTracer()
    assert t.capture_method(f) is f and t.capture_lambda_handler(f) is f and t.capture_method()(f) is f
