"""One path to the base model: ``deepvre weights convert --publish`` and the notebooks'
``lineage.ensure_imagenet_base`` publish the same ``mobilenet-v2-imagenet:1.0.0`` entry."""

import pytest
from click.testing import CliRunner

from tests.prereqs import require

SAME = ("name", "version", "title", "summary", "owner", "published_by", "visibility", "use_case", "tags", "metadata")


@pytest.fixture
def catalogs(tmp_path):
    try:
        from deepvre.market.catalog import Catalog
    except ImportError:
        require(False, "deepvre.market.catalog (marketplace area) is needed")

    def make(name):
        return Catalog(database_url=f"sqlite:///{tmp_path / name / 'index.sqlite'}", store_url=str(tmp_path / name / "store"))

    return make


def files(entry):
    return {name: info["sha256"] for name, info in entry["files"].items()}


def test_cli_and_notebook_routes_publish_the_same_entry(mobilenet_dir, catalogs, tmp_path, monkeypatch):
    from deepvre.cli import main
    from deepvre.market.catalog import Catalog
    from deepvre.market.client import LocalMarket
    from deepvre.science import base_models
    from deepvre.training import lineage

    monkeypatch.setenv("DEEPVRE_MARKET_DIR", str(tmp_path / "cli"))
    result = CliRunner().invoke(main, ["weights", "convert", "--out", mobilenet_dir, "--publish"])
    assert result.exit_code == 0, result.output
    by_cli = Catalog().show("anyone", base_models.MOBILENET_NAME, base_models.MOBILENET_VERSION)

    market = LocalMarket(catalogs("notebook"))  # the local user's client, as the notebooks connect()
    lineage.ensure_imagenet_base(market, convert_dir=mobilenet_dir)
    by_notebook = market.catalog.show("anyone", lineage.BASE_NAME, lineage.BASE_VERSION)

    assert {k: by_notebook[k] for k in SAME} == {k: by_cli[k] for k in SAME}
    assert files(by_notebook) == files(by_cli)
    assert by_cli["owner"] == by_cli["published_by"] == base_models.OWNER and by_cli["visibility"] == "public"
    assert by_cli["title"] == base_models.mobilenet_document({})["title"]
    assert by_cli["metadata"]["deepvre"]["use_case"] == "base"
    assert (lineage.BASE_NAME, lineage.BASE_VERSION) == (base_models.MOBILENET_NAME, base_models.MOBILENET_VERSION)


def test_first_publisher_does_not_change_the_entry(mobilenet_dir, catalogs):
    """Whichever route runs first, the other finds the entry and leaves it as it is."""
    from deepvre.market.client import LocalMarket
    from deepvre.science import base_models
    from deepvre.training import lineage

    catalog = catalogs("shared")
    market = LocalMarket(catalog)
    first = lineage.ensure_imagenet_base(market, convert_dir=mobilenet_dir)
    again = base_models.publish_mobilenet(mobilenet_dir, catalog)
    assert again["published"] == first["published"] and again["owner"] == base_models.OWNER
    assert [v["version"] for v in catalog.versions("anyone", base_models.MOBILENET_NAME)] == ["1.0.0"]


def test_another_missing_base_is_not_invented(catalogs, tmp_path):
    from deepvre.market.catalog import NotFound
    from deepvre.market.client import LocalMarket
    from deepvre.training import lineage

    market = LocalMarket(catalogs("empty"))
    with pytest.raises(NotFound):
        lineage.ensure_imagenet_base(market, lineage.BASE_NAME, "2.0.0", convert_dir=str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_a_prepared_folder_publishes_the_same_entry_without_verifying_again(mobilenet_dir, catalogs, tmp_path,
                                                                          monkeypatch):
    """``python -m deepvre.science.base_models OUT`` (the hub image's build stage) writes the document;
    the seed then publishes it as the converting route would, with no TensorFlow call, and a changed
    file makes the folder unusable."""
    import shutil

    from deepvre.science import base_models

    prepared = tmp_path / "prepared"
    shutil.copytree(mobilenet_dir, prepared)
    base_models.main([str(prepared)])
    converted = base_models.publish_mobilenet(mobilenet_dir, catalogs("converted"))

    def no_tensorflow(folder):
        raise AssertionError("verified again")

    monkeypatch.setattr(base_models, "verification", no_tensorflow)
    seeded = base_models.publish_mobilenet(str(prepared), catalogs("prepared"))
    same = [k for k in SAME if k != "metadata"]
    assert {k: seeded[k] for k in same} == {k: converted[k] for k in same}
    assert seeded["metadata"]["deepvre"]["metrics"] == converted["metadata"]["deepvre"]["metrics"]
    assert files(seeded) == files(converted)

    with open(prepared / "preprocessing.json", "a") as fh:
        fh.write(" ")
    assert base_models.prepared_document(str(prepared)) is None
    with pytest.raises(AssertionError, match="verified again"):
        base_models.publish_mobilenet(str(prepared), catalogs("tampered"))
