"""Settings from the environment (handler/config.py): defaults, bounds, errors that name the variable, and the
README's table of every setting."""

import re

import pytest

from conftest import ROOT
from handler.config import Settings, SettingsError


def variables() -> dict[str, object]:
    """Environment variable -> default, from the settings model itself."""
    return {field.validation_alias.choices[0]: field.default for field in Settings.model_fields.values()}


def test_defaults(monkeypatch):
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    s = Settings.from_env()
    assert (s.max_image_bytes, s.max_faces, s.result_url_ttl, s.results_bucket) == (10 * 1024 * 1024, 8, 3600, None)


def test_values_are_read_and_empty_means_unset(monkeypatch):
    monkeypatch.setenv("MAX_FACES", "3")
    monkeypatch.setenv("URL_TOTAL_TIMEOUT", "2.5")
    monkeypatch.setenv("RESULTS_BUCKET", "")
    monkeypatch.setenv("RESULT_URL_TTL_SECONDS", "600")
    s = Settings.from_env()
    assert (s.max_faces, s.url_total_timeout, s.results_bucket, s.result_url_ttl) == (3, 2.5, None, 600)


@pytest.mark.parametrize("name,value,why", [
    ("MAX_FACES", "0", "greater than or equal to 1"),
    ("MAX_IMAGE_BYTES", "10MB", "valid integer"),
    ("RESULT_URL_TTL_SECONDS", "90000", "less than or equal to 86400"),
    ("URL_CONNECT_TIMEOUT", "-1", "greater than 0"),
    ("TORCH_THREADS", "-2", "greater than or equal to 0"),
])
def test_a_bad_value_fails_naming_the_variable(monkeypatch, name, value, why):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert f"{name}={value!r}" in str(err.value) and why in str(err.value)


def test_every_bad_variable_is_named_at_once(monkeypatch):
    monkeypatch.setenv("MAX_FACES", "0")
    monkeypatch.setenv("MAX_GENERATE", "many")
    with pytest.raises(SettingsError, match=r"MAX_FACES='0'.*MAX_GENERATE='many'"):
        Settings.from_env()


def test_readme_lists_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", readme, re.M))
    for name, default in variables().items():
        assert name in rows, f"README's settings table has no row for {name}"
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            shown = rows[name].replace(",", "").replace("`", "")
            numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", shown)]
            assert float(default) in numbers, f"README gives {rows[name].strip()!r} as {name}'s default, not {default}"
