"""Settings: defaults, parsing, a clear error naming the variable, every variable documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from foodclf.errors import SettingsError
from foodclf.settings import Settings, load_settings, setting_fields

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_just_work():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///data/foodclf.db"
    assert settings.max_upload_bytes == 10 * 1024 * 1024


def test_values_are_parsed_by_type():
    settings = load_settings(
        {
            "FOODCLF_TOP_K": "3",
            "FOODCLF_UNCERTAIN_BELOW": "0.7",
            "FOODCLF_ZERO_SHOT_LABELS": "pizza, not food ,",
            "FOODCLF_MODEL": "  /models/x ",
        }
    )
    assert (settings.top_k, settings.uncertain_below) == (3, 0.7)
    assert settings.zero_shot_labels == ("pizza", "not food")
    assert settings.model == "/models/x"


@pytest.mark.parametrize(
    "env, value, words",
    [
        ("FOODCLF_TOP_K", "many", "FOODCLF_TOP_K must be a whole number"),
        ("FOODCLF_TOP_K", "-1", "FOODCLF_TOP_K must be 0 or more"),
        ("FOODCLF_UNCERTAIN_BELOW", "1.5", "FOODCLF_UNCERTAIN_BELOW must be a number from 0 to 1"),
        ("FOODCLF_PRECISION", "fp8", "FOODCLF_PRECISION must be one of"),
        ("FOODCLF_DEVICE", "tpu", "FOODCLF_DEVICE must be"),
        ("FOODCLF_MAX_UPLOAD_MB", "0", "FOODCLF_MAX_UPLOAD_MB must be more than 0"),
    ],
)
def test_bad_value_names_the_variable(env, value, words):
    with pytest.raises(SettingsError, match=words):
        load_settings({env: value})


@pytest.mark.parametrize("field", setting_fields(), ids=lambda f: f.metadata["env"])
def test_every_setting_is_documented_in_the_readme(field):
    assert f"`{field.metadata['env']}`" in README.read_text()
    assert field.metadata["help"]
