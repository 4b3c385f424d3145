"""``deepvre preprocess --settings X`` hands X's ``slurm:`` and ``dask:`` sections to the cluster
factory as arguments (issue 14): offline, a stand-in ``SLURMCluster`` records what it is given."""

import pytest
import yaml
from click.testing import CliRunner

from deepvre.site import environment

from .data import class_folders

SITE = {"slurm": {"partition": "short", "account": "proj-42", "qos": "high", "extra_options": ["--exclusive"]},
        "dask": {"cluster": "slurm", "workers": 1, "slurm": {"cores": 2, "memory": "4GB", "host": "127.0.0.1"}}}


class Built(Exception):
    """Raised by the stand-in once it has recorded its arguments."""


@pytest.fixture
def built(monkeypatch):
    import dask_jobqueue

    from deepvre.pipelines import tls

    seen = {}

    def slurm_cluster(**kwargs):
        seen.update(kwargs)
        raise Built

    monkeypatch.setattr(dask_jobqueue, "SLURMCluster", slurm_cluster)
    monkeypatch.setattr(tls, "user_security", lambda: "user-security")
    return seen


def preprocess(tmp_path, *args):
    from deepvre.cli import main

    images = class_folders(str(tmp_path / "in"), n_per_class=2, corrupt=0)
    result = CliRunner().invoke(main, ["preprocess", "images", images, str(tmp_path / "out"), *args])
    assert isinstance(result.exception, Built), result.output
    return result


@pytest.mark.parametrize("through_environment", [False, True])
def test_preprocess_settings_slurm_section_reaches_the_slurm_cluster(built, tmp_path, monkeypatch,
                                                                   through_environment):
    settings = tmp_path / "site.yaml"
    settings.write_text(yaml.safe_dump(SITE))
    monkeypatch.delenv(environment.SETTINGS, raising=False)
    if through_environment:  # $DEEPVRE_SETTINGS is the default of --settings
        monkeypatch.setenv(environment.SETTINGS, str(settings))
        preprocess(tmp_path)
    else:
        preprocess(tmp_path, "--settings", str(settings))
    # the slurm: section's terms (queue, account, qos, extra options), the dask: section's sizes
    assert built["queue"] == "short" and built["account"] == "proj-42"
    assert "--qos=high" in built["job_extra_directives"] and "--exclusive" in built["job_extra_directives"]
    assert built["cores"] == 2 and built["memory"] == "4GB" and built["security"] == "user-security"
    assert built["scheduler_options"]["host"] == "127.0.0.1"


def test_an_invalid_settings_file_names_the_key(tmp_path, monkeypatch):
    from deepvre.cli import main

    settings = tmp_path / "site.yaml"
    settings.write_text(yaml.safe_dump({"slurm": {"acount": "typo"}}))
    images = class_folders(str(tmp_path / "in"), n_per_class=2, corrupt=0)
    result = CliRunner().invoke(main, ["preprocess", "images", images, str(tmp_path / "out"), "--settings", str(settings)])
    assert result.exit_code == 2 and "slurm.acount" in result.output
