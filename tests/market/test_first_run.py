"""A first run that works: a real hub's marketplace seeds the ImageNet MobileNetV2 base model as
the system account, reserves its name, and ``deepvre weights convert --publish`` inside the hub
talks to that marketplace (never a private catalog).

Real JupyterHub + configurable-http-proxy + the marketplace service (``markethub.market_hub``);
the CLI runs as a separate process with a server's environment (``$DEEPVRE_MARKET_URL``, the
user's token, ``$JUPYTERHUB_API_TOKEN``).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.hub.hubprocess import wait_for

from .markethub import market_hub

BASE = "mobilenet-v2-imagenet"
DEEPVRE = str(Path(sys.executable).parent / "deepvre")


def auth(hub, user):
    return {"Authorization": f"token {hub['tokens'][user]}"}


def status(hub, user="alice"):
    r = requests.get(hub["market_url"] + "api/status", headers=auth(hub, user), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["seed"]


def in_server(hub, user, private_dir, *args):
    """``deepvre ARGS`` as in ``user``'s server: the hub's marketplace in its environment."""
    env = dict(os.environ, DEEPVRE_MARKET_URL=hub["market_url"], DEEPVRE_MARKET_TOKEN=hub["tokens"][user],
               JUPYTERHUB_API_TOKEN=hub["tokens"][user], DEEPVRE_MARKET_DIR=str(private_dir))
    return subprocess.run([DEEPVRE, *args], env=env, capture_output=True, text=True, timeout=600)


def test_inside_a_hub_the_cli_uses_the_hubs_marketplace_and_the_name_is_reserved(tmp_path, mobilenet_dir):
    (tmp_path / "hub").mkdir()
    with market_hub(tmp_path / "hub") as hub:
        assert status(hub)["state"] == "off"
        private = tmp_path / "private-catalog"
        done = in_server(hub, "alice", private, "weights", "convert", "--out", mobilenet_dir, "--publish")
        assert done.returncode != 0, done.stdout
        assert "reserved" in done.stderr and BASE in done.stderr, done.stderr
        assert "published" not in done.stdout
        assert not private.exists()  # no private catalog inside a hub
        # an admin may not claim it either, and nothing of it is in the hub's catalog
        done = in_server(hub, "root", private, "weights", "convert", "--out", mobilenet_dir, "--publish")
        assert done.returncode != 0 and "reserved" in done.stderr, done.stderr
        assert requests.get(hub["market_url"] + f"api/models/{BASE}", headers=auth(hub, "bob"), timeout=30).status_code == 404
        # a notebook's ensure_imagenet_base before the seed: a clear error, nothing published
        from deepvre.errors import Unavailable
        from deepvre.market.client import HTTPMarket
        from deepvre.training import lineage

        with pytest.raises(Unavailable, match="not in the hub's marketplace yet"):
            lineage.ensure_imagenet_base(HTTPMarket(hub["market_url"], hub["tokens"]["alice"]),
                                         convert_dir=mobilenet_dir)
        # without the hub's marketplace inside a hub: a clear error, not a private catalog
        env = dict(os.environ, JUPYTERHUB_API_TOKEN=hub["tokens"]["alice"], DEEPVRE_MARKET_DIR=str(private))
        env.pop("DEEPVRE_MARKET_URL", None)
        done = subprocess.run([DEEPVRE, "weights", "convert", "--out", mobilenet_dir, "--publish"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode != 0 and "DEEPVRE_MARKET_URL" in done.stderr, done.stderr
        assert not private.exists()


def wait_seeded(hub, timeout=300):
    return wait_for(lambda: status(hub, "root")["state"] in ("done", "failed") and status(hub, "root"), timeout, "the seed")


def test_first_start_seeds_the_base_model_once(tmp_path, mobilenet_dir):
    state = tmp_path / "hub"
    state.mkdir()
    with market_hub(state, {"seed_base_models": True}) as hub:
        first = status(hub)
        assert first["state"] in ("seeding", "done"), first
        if first["state"] == "seeding":
            assert "seeding base model" in first["message"] and BASE in first["message"]
        started = time.monotonic()
        seeded = wait_seeded(hub)
        assert seeded["state"] == "done", seeded
        assert time.monotonic() - started < 240
        entry = requests.get(hub["market_url"] + f"api/models/{BASE}", headers=auth(hub, "bob"), timeout=30).json()
        assert (entry["owner"], entry["published_by"], entry["visibility"], entry["version"]) == \
            ("deepvre", "deepvre", "public", "1.0.0")
        assert entry["metadata"]["deepvre"]["metrics"]["chelsea_top1"]  # verified on the cat photo
        log = Path(hub["log"]).read_text()
        assert "[marketplace seed] converting" in log and f"[marketplace seed] published {BASE} 1.0.0" in log
        # a user's CLI inside the hub now finds it there, owned by the system account
        done = in_server(hub, "alice", tmp_path / "private", "weights", "convert", "--out", mobilenet_dir, "--publish")
        assert done.returncode == 0, done.stderr
        assert f"{BASE} 1.0.0 (owner deepvre) is in {hub['market_url']}" in done.stdout
        assert not (tmp_path / "private").exists()
        published = entry["published"]
    # a restart keeps the entry as it is and does not seed again
    with market_hub(state, {"seed_base_models": True}, users=(), groups=()) as hub:
        again = status(hub, "root")
        assert again["state"] == "done", again
        entry = requests.get(hub["market_url"] + f"api/models/{BASE}/versions", headers=auth(hub, "root"), timeout=30).json()
        assert [v["version"] for v in entry] == ["1.0.0"]
        shown = requests.get(hub["market_url"] + f"api/models/{BASE}", headers=auth(hub, "root"), timeout=30).json()
        assert shown["published"] == published
        assert "[marketplace seed] converting" not in Path(hub["log"]).read_text()  # this start's log


def test_a_killed_seed_leaves_nothing_and_the_next_start_seeds(tmp_path):
    state = tmp_path / "hub"
    state.mkdir()
    with market_hub(state, {"seed_base_models": True}) as hub:
        status_file = state / "marketplace" / "seed-status.json"
        pid = wait_for(lambda: json.loads(status_file.read_text()).get("pid"), 60, "the seed's process")
        wait_for(lambda: "[marketplace seed] converting" in Path(hub["log"]).read_text(), 120, "the conversion")
        os.kill(pid, signal.SIGKILL)
        failed = wait_for(lambda: status(hub)["state"] == "failed" and status(hub), 60, "the seed's failure")
        assert "next start" in failed["message"]
        assert requests.get(hub["market_url"] + f"api/models/{BASE}", headers=auth(hub, "root"), timeout=30).status_code == 404
        listed = requests.get(hub["market_url"] + "api/models", headers=auth(hub, "root"), timeout=30).json()
        assert listed == []
    with market_hub(state, {"seed_base_models": True}, users=(), groups=()) as hub:
        assert wait_seeded(hub)["state"] == "done"
        entry = requests.get(hub["market_url"] + f"api/models/{BASE}", headers=auth(hub, "root"), timeout=30).json()
        assert entry["owner"] == "deepvre"
