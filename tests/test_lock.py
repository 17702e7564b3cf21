"""The locked dependency set (README: "Dependencies") agrees with pyproject.toml, and is what `make` and the Lambda
image install. Regenerate it with `make lock` after changing dependencies; this test says when that is due."""

import re
import shlex
import subprocess
import tomllib

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import ROOT

REQUIREMENTS = ROOT / "requirements"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The interpreters the locks serve: `make` (3.11, the project's machines and CI) and the Lambda image (3.12).
ENVIRONMENTS = [{**default_environment(), "python_version": v, "python_full_version": f"{v}.0",
                 "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                 "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}
                for v in ("3.11", "3.12")]


def read_lock(name: str) -> dict[str, dict]:
    """name -> {"version", "hashes", "marker", "via"} from a pip-compatible lock file."""
    entries, current = {}, None
    lines = (REQUIREMENTS / name).read_text().splitlines()
    for line in lines:
        if line.startswith("# The following packages were excluded"):
            break
        if not line.strip() or (line.startswith("#") and current is None):
            continue
        if not line.startswith((" ", "#")):  # a requirement line: "name==version ; marker \"
            requirement = Requirement(line.rstrip(" \\"))
            pins = [s for s in requirement.specifier if s.operator == "=="]
            assert len(pins) == 1, f"{name}: {line!r} is not pinned with =="
            current = entries[canonicalize_name(requirement.name)] = {
                "version": Version(pins[0].version), "hashes": [], "marker": requirement.marker, "via": []}
        elif "--hash=sha256:" in line:
            current["hashes"].append(line.split("--hash=sha256:")[1].rstrip(" \\"))
        elif line.strip().startswith("#"):
            current["via"].append(line.strip("# ").removeprefix("via").strip())
    return entries


def applies(requirement: Requirement) -> bool:
    return requirement.marker is None or any(requirement.marker.evaluate(env) for env in ENVIRONMENTS)


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def torch_pin() -> tuple[Version, list[str]]:
    """The torch version that requirements/torch-cpu.txt names, and the index it comes from."""
    lines = [line.split("#")[0].strip() for line in (REQUIREMENTS / "torch-cpu.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    indexes = [shlex.split(line)[1] for line in lines if line.startswith(("--index-url", "-i "))]
    torch = [Requirement(line) for line in lines if not line.startswith("-")]
    assert [canonicalize_name(r.name) for r in torch] == ["torch"], "torch-cpu.txt names torch alone"
    return Version(next(iter(torch[0].specifier)).version), indexes


RUNTIME = [Requirement(r) for r in project()["dependencies"]]
DEV = [Requirement(r) for r in project()["optional-dependencies"]["dev"]]


@pytest.mark.parametrize("lock,declared", [("runtime.lock", RUNTIME), ("dev.lock", RUNTIME + DEV)])
def test_the_lock_satisfies_pyproject(lock, declared):
    entries = read_lock(lock)
    stale = []
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if name == "torch" or not applies(requirement):
            continue
        entry = entries.get(name)
        if entry is None:
            stale.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(entry["version"], prereleases=True):
            stale.append(f"{requirement} is locked at {entry['version']}")
    # The other way round: a package the lock keeps for the project itself that pyproject.toml no longer names.
    direct = {canonicalize_name(r.name) for r in declared}
    for name, entry in entries.items():
        if any(v.startswith("face-interpolator") for v in entry["via"]) and name not in direct:
            stale.append(f"{name} is locked for the project, but pyproject.toml no longer declares it")
    assert not stale, f"requirements/{lock} is out of date with pyproject.toml (run `make lock`): {stale}"


def test_torch_is_the_cpu_build_from_the_cpu_index_and_fits_pyproject():
    version, indexes = torch_pin()
    assert version.local == "cpu", "the CPU build: PyPI's Linux torch carries gigabytes of CUDA libraries"
    assert indexes == [TORCH_CPU_INDEX]
    declared = next(r for r in RUNTIME if canonicalize_name(r.name) == "torch")
    assert declared.specifier.contains(version), f"pyproject.toml wants {declared}, torch-cpu.txt pins {version}"
    for lock in ("runtime.lock", "dev.lock"):
        assert "torch" not in read_lock(lock), f"torch comes only from torch-cpu.txt, not {lock}"


def test_every_locked_package_is_hashed_and_the_two_locks_agree():
    runtime, dev = read_lock("runtime.lock"), read_lock("dev.lock")
    for lock, entries in (("runtime.lock", runtime), ("dev.lock", dev)):
        unhashed = [name for name, entry in entries.items() if not entry["hashes"]]
        assert not unhashed, f"{lock}: no hashes for {unhashed}"
    differ = {name: (str(e["version"]), str(dev.get(name, {}).get("version"))) for name, e in runtime.items()
              if name not in dev or dev[name]["version"] != e["version"]}
    assert not differ, f"the image and `make` would install different versions: {differ}"
    # the locks hold no machine's paths or mirrors, only PyPI
    for lock in ("runtime.lock", "dev.lock"):
        text = (REQUIREMENTS / lock).read_text()
        assert "file://" not in text and "/opt/" not in text and "--find-links" not in text, lock


def _install_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]


def _check_installs(name: str, installs: list[str], lock: str) -> None:
    torch = [line for line in installs if "requirements/torch-cpu.txt" in line]
    assert len(torch) == 1 and "--no-deps" in torch[0], f"{name}: torch from requirements/torch-cpu.txt, --no-deps"
    locked = [line for line in installs if f"requirements/{lock}" in line]
    assert len(locked) == 1 and "--require-hashes" in locked[0] and "--no-deps" in locked[0], \
        f"{name} does not install requirements/{lock} with --require-hashes --no-deps"
    assert installs.index(torch[0]) < installs.index(locked[0]), f"{name}: torch first"


def test_make_installs_the_locked_set():
    # The commands `make setup` runs on a fresh clone, variables expanded; nothing is run.
    dry = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr
    installs = _install_lines(dry.stdout)
    _check_installs("make setup", installs, "dev.lock")
    assert any(re.search(r"--no-deps\b.*-e \.", line) for line in installs), "the project itself, --no-deps"
    assert TORCH_CPU_INDEX not in (ROOT / "Makefile").read_text(), "torch-cpu.txt declares the index, once"


def test_the_image_installs_the_locked_set():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [part for line in _install_lines(dockerfile) for part in line.split("&&") if "pip install" in part]
    _check_installs("Dockerfile", installs, "runtime.lock")
    assert TORCH_CPU_INDEX not in dockerfile, "torch-cpu.txt declares the index, once"
    assert not re.search(r'pip install[^\n]*\\\n\s+"[a-z]', dockerfile), "the image installs packages by name"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for name in ("torch-cpu.txt", "runtime.lock"):
        assert f"!requirements/{name}" in ignored, f".dockerignore keeps requirements/{name} out of the build"
