"""The site settings a user's server runs with: the hub hands them over as JSON
(``$DEEPVRE_SERVER_SETTINGS``), and the panel's runs and Dask clusters use them."""

import json
import subprocess
import types

import pytest
from traitlets.config import Config

from deepvre.site.settings import SettingsError, for_servers, server_sections, validate_settings

SITE = {"mode": "slurm", "slurm": {"account": "physics", "partition": "gpu-a100"},
        "dask": {"cluster": "local", "workers": 3},
        "marketplace": {"database_url": "postgresql://market:not-for-servers@db/market"}}


@pytest.fixture
def jp_server_config(monkeypatch):
    # as the hub sets it for every server (deepvre_hub.modes.configure_common), with a site that
    # sends the panel's runs to Slurm (c.DeepvreExtension.runs_backend does the same)
    handed = {**for_servers(validate_settings(SITE)), "runs_backend": "slurm"}
    monkeypatch.setenv("DEEPVRE_SERVER_SETTINGS", json.dumps(handed))
    return Config({"ServerApp": {"jpserver_extensions": {"deepvre_jupyter": True}}})


def test_servers_get_the_run_backend_and_sections_but_no_secrets():
    handed = for_servers(validate_settings(SITE))
    # in the server's own allocation, also on Slurm (a second job would queue for what it holds)
    assert set(handed) == {"runs_backend", "slurm", "dask"} and handed["runs_backend"] == "local"
    assert handed["slurm"]["account"] == "physics" and handed["dask"]["workers"] == 3
    assert "not-for-servers" not in json.dumps(handed)
    assert server_sections({"DEEPVRE_SERVER_SETTINGS": json.dumps(handed)}) == handed
    assert server_sections({}) == {}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_broken_hand_over_is_a_settings_error(text):
    with pytest.raises(SettingsError, match="DEEPVRE_SERVER_SETTINGS"):
        server_sections({"DEEPVRE_SERVER_SETTINGS": text})


def test_the_extension_takes_the_sections_from_the_hub(jp_serverapp):
    ext = jp_serverapp.web_app.settings["deepvre"]
    assert ext.runs_backend == "slurm"
    assert ext.preprocess_jobs.slurm["account"] == "physics"
    assert ext.preprocess_jobs.dask["workers"] == 3


def test_a_panel_run_is_submitted_with_the_sites_slurm_terms(api, jp_root_dir, monkeypatch):
    from deepvre.runs.backends import slurm
    from tests.extension.conftest import make_notebook

    # sbatch is not reached: what the run would submit is its job.sbatch, written first
    refused = subprocess.CompletedProcess([], 1, "", "not submitted by this test")
    monkeypatch.setattr(slurm, "subprocess", types.SimpleNamespace(run=lambda *a, **k: refused))
    make_notebook(jp_root_dir / "train.ipynb")
    status, _ = api("POST", "runs", body={"path": "train.ipynb", "parameters": {"epochs": 3}})
    assert status >= 400
    [script] = list((jp_root_dir / "runs").glob("*/job.sbatch"))
    text = script.read_text()
    assert "#SBATCH --account=physics" in text and "#SBATCH --partition=gpu-a100" in text
