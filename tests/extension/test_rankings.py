"""The panel's "Rank base models for my data" through the real server extension: a job on a real
preprocessed data set (generated colour images, the real ``images`` pipeline), its progress and the
ranking; clear errors for folders that are no data set or lie outside the workspace."""

import time

import numpy as np
import pytest

from tests.market.conftest import LABELS, colour_images


def colour_data_set(root, seed=1):
    """90 generated 8x8 colour images preprocessed by the real ``images`` pipeline into ``root/colours-data``."""
    from PIL import Image

    from deepvre.pipelines import preprocess

    x, y = colour_images(90, seed=seed)
    for n, (image, label) in enumerate(zip(x, y)):
        folder = root / "colour-photos" / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{n:03d}.png")
    preprocess("images", str(root / "colour-photos"), str(root / "colours-data"),
               {"size": 8, "split": (0.6, 0.2, 0.2)}, cluster="local", n_workers=1, progress=False)
    return root / "colours-data"


@pytest.fixture
def colours_data(jp_root_dir):
    return colour_data_set(jp_root_dir).name


def wait_for(api, job_id, timeout=600):
    deadline = time.monotonic() + timeout
    stages = set()
    while True:
        status, job = api("GET", f"rankings/{job_id}")
        assert status == 200, job
        stages.add(job["stage"])
        if job["state"] in ("done", "failed"):
            return job, stages
        assert time.monotonic() < deadline, job
        time.sleep(1)


def test_a_ranking_job_ranks_the_catalog_on_a_workspace_data_set(api, market_dir, colours_data, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status, job = api("POST", "rankings", {"data": colours_data, "cluster": "local"})
    assert status == 201 and job["state"] in ("starting", "running") and job["data"] == "colours-data", job
    done, stages = wait_for(api, job["id"])
    assert done["state"] == "done", done
    assert "features" in stages or "scoring" in stages  # progress was reported while it ran
    result = done["result"]
    assert result["data"]["path"] == "colours-data" and result["data"]["n_classes"] == 3
    assert [r["model"] for r in sorted(result["models"], key=lambda r: r["floor"])] == \
        ["colours:1.0.0", "random:colours:1.0.0"]
    assert all(r["reading"] and r["logme"] is not None for r in result["models"])
    # the network's features are its input pixels (Flatten, then the head): equal to the floor's
    colours, floor = sorted(result["models"], key=lambda r: r["floor"])
    assert colours["logme"] == pytest.approx(floor["logme"], abs=1e-6)
    assert "close to the random network" in colours["reading"]
    assert colours["leep"] > floor["leep"]  # its own trained head knows the colours; the random one does not
    status, listing = api("GET", "rankings")
    assert status == 200 and [j["id"] for j in listing["jobs"]] == [job["id"]] and listing["clusters"][0] == "local"


def test_bad_folders_are_refused_before_a_job_starts(api, market_dir, jp_root_dir):
    (jp_root_dir / "plain").mkdir()
    status, answer = api("POST", "rankings", {"data": "plain"})
    assert status == 400 and "not a preprocessed data set" in answer["message"]
    status, answer = api("POST", "rankings", {"data": "missing"})
    assert status == 400 and "does not exist in the workspace" in answer["message"]
    status, answer = api("POST", "rankings", {"data": "../outside"})
    assert status in (400, 403) and answer["message"]
    status, answer = api("POST", "rankings", {})
    assert status == 400 and "preprocessed data set" in answer["message"]
    status, answer = api("GET", "rankings/99")
    assert status == 404
    status, listing = api("GET", "rankings")
    assert listing["jobs"] == []
