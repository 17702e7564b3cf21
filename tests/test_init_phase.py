"""The Lambda init phase (importing handler/main.py) runs without the cyclic garbage collector, for the cold start;
once the model is loaded, what it left is frozen and collection is back on, so that a warm container still collects
its requests' garbage."""

import os
import subprocess
import sys

from conftest import ROOT


def probe(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_collection_resumes_after_the_init_phase_with_its_objects_frozen():
    assert probe("import gc, handler.main; print(gc.isenabled(), gc.get_freeze_count() > 0)") == "True True"


def test_a_collector_switched_off_before_the_import_stays_off():
    assert probe("import gc; gc.disable(); import handler.main; print(gc.isenabled())") == "False"
