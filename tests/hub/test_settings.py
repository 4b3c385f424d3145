"""Settings: the combined JSON Schema, defaults, and errors that name the key."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepvre.site.settings import (
    SettingsError,
    combined_schema,
    key_path,
    load_settings,
    validate_settings,
)

DEEPVRE = str(Path(sys.executable).parent / "deepvre")
PROFILE = {"slug": "cpu", "display_name": "CPU"}


def errors_of(settings, **kwargs):
    with pytest.raises(SettingsError) as info:
        validate_settings(settings, **kwargs)
    return info.value.errors


def test_shipped_settings_are_valid():
    settings = load_settings()
    assert settings["mode"] == "local"
    assert {p["slug"] for p in settings["profiles"]} >= {"cpu-small", "gpu-1"}


def test_defaults_are_filled():
    settings = validate_settings({"profiles": [PROFILE]})
    assert settings["hub"]["port"] == 8000 and settings["hub"]["admin"] == "admin"
    assert settings["auth"]["type"] == "native"
    assert settings["profiles"][0]["gpus"] == 0 and settings["profiles"][0]["groups"] == []
    assert settings["culling"]["gpu_timeout"] < settings["culling"]["timeout"]


@pytest.mark.parametrize("settings, expected", [
    ({"colour": "blue"}, "colour: unknown top-level key"),
    ({"hub": {"port": "eighty"}}, "hub.port: 'eighty' is not of type 'integer'"),
    ({"hub": {"prot": 80}}, "hub.prot: unknown key"),
    ({"mode": "cloud"}, "mode: 'cloud' is not one of"),
    ({"profiles": [PROFILE, {**PROFILE, "slug": "b"}, {**PROFILE, "slug": "c", "gpus": -1}]},
     "profiles[2].gpus: -1 is less than the minimum of 0"),
    ({"profiles": [{**PROFILE, "memory": "lots"}]}, "profiles[0].memory: 'lots' does not match"),
    ({"profiles": [PROFILE, PROFILE]}, "profiles[1].slug: 'cpu' is already used by profiles[0]"),
    ({"profiles": [{**PROFILE, "default": True}, {**PROFILE, "slug": "b", "default": True}]},
     "profiles[1].default: only one profile"),
    ({"gpus": {"devices": [{"index": "zero"}]}}, "gpus.devices[0].index: 'zero' does not match"),
])
def test_errors_name_the_key(settings, expected):
    assert any(e.startswith(expected) for e in errors_of(settings)), errors_of(settings)


def test_every_schema_file_is_a_section(tmp_path):
    (tmp_path / "alpha.json").write_text(json.dumps({"type": "object", "properties": {"x": {"type": "integer"}}}))
    (tmp_path / "beta.json").write_text(json.dumps({"type": "string"}))
    assert set(combined_schema(tmp_path)["properties"]) == {"alpha", "beta"}
    assert validate_settings({"alpha": {"x": 1}, "beta": "b"}, schema_dir=tmp_path)["alpha"] == {"x": 1}
    assert errors_of({"gamma": 1}, schema_dir=tmp_path) == ["gamma: unknown top-level key (known: alpha, beta)"]


def undescribed(schema, path):
    """The key paths below ``schema`` (at ``path``) whose schema has no ``description``."""
    found = []
    for key, sub in (schema.get("properties") or {}).items():
        if not sub.get("description"):
            found.append(f"{path}.{key}")
        found += undescribed(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        found += undescribed(schema["items"], f"{path}[]")
    return found


def test_every_key_is_described():
    """The schemas are the settings' documentation (`deepvre hub check`, docs/architecture.md)."""
    sections = combined_schema()["properties"]
    missing = [name for name, schema in sections.items() if not schema.get("description")]
    for name, schema in sections.items():
        missing += undescribed(schema, name)
    assert not missing, f"settings keys without a description: {missing}"
    assert undescribed({"properties": {"a": {"properties": {"b": {}}, "description": "A."}}}, "x") == ["x.a.b"]


@pytest.mark.parametrize("section", ["dask", "kubernetes", "slurm", "local"])
def test_sections_whose_consumers_read_every_key_get_every_default_from_the_schema(section):
    """These consumers read keys without checking they are there: the schema holds every default
    (no second table of defaults in the code), so an empty section comes out whole."""
    def leaves(schema, path):
        props = schema.get("properties") or {}
        if not props or path.endswith("resources"):
            return [path]
        return [leaf for key, sub in props.items() for leaf in leaves(sub, f"{path}.{key}")]

    filled = validate_settings({})[section]
    for leaf in leaves(combined_schema()["properties"][section], section):
        node = {section: filled}
        for part in leaf.split("."):
            assert part in node, f"{leaf}: no default in the schema"
            node = node[part]


def test_key_path():
    assert key_path(["profiles", 2, "gpus"]) == "profiles[2].gpus"
    assert key_path([]) == ""


def test_yaml_errors_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: [local\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "none.yaml")


@pytest.mark.parametrize("settings, key", [
    ({"mode": "local", "unknown_section": {}}, "unknown_section: unknown top-level key"),
    ({"mode": "local", "hub": {"port": "x"}}, "hub.port: 'x' is not of type 'integer'"),
    ({"mode": "local", "profiles": [{"slug": "g", "display_name": "G", "gpus": -1}]},
     "profiles[0].gpus: -1 is less than the minimum of 0"),
])
def test_bad_settings_stop_start_up(tmp_path, settings, key):
    """`deepvre hub up` refuses to start (exit 2), naming the key, and starts nothing."""
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(settings))
    result = subprocess.run([DEEPVRE, "hub", "up", "--settings", str(path), "--state-dir", str(tmp_path / "state")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert key in result.stderr
    assert not (tmp_path / "state").exists()


def test_hub_config_refuses_bad_settings_too(tmp_path, repo_root):
    """Started directly with `jupyterhub -f`, the config file stops on bad settings as well."""
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({"hub": {"port": -3}}))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", f"{repo_root}/hub/jupyterhub_config.py"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        env={"PATH": "/usr/bin:/bin", "DEEPVRE_SETTINGS": str(path), "DEEPVRE_STATE_DIR": str(tmp_path / "s")},
    )
    assert result.returncode != 0
    assert "hub.port: -3 is less than the minimum of 1" in result.stderr
