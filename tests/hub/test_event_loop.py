"""The spawner's slow steps (``useradd``, ``nvidia-smi``) leave the hub's event loop free."""

import asyncio
import logging
import threading
from types import SimpleNamespace

import pytest
from tornado import web

from deepvre_hub import accounts
from deepvre_hub.spawn_form import ensure_account_hook
from deepvre_hub.spawner import DeepvreSpawner

SMI_OUTPUT = "0, GPU-aaaa, NVIDIA T4, 15360 MiB\n1, GPU-bbbb, NVIDIA T4, 15360 MiB\n"


def hook_spawner(name):
    """What ``ensure_account_hook`` reads of a spawner (root mode: the user's own account)."""
    return SimpleNamespace(personal_mode=False, user=SimpleNamespace(name=name, admin=False),
                           account_group=accounts.MARKER_GROUP, allowed_existing_accounts=[],
                           log=logging.getLogger("test"))


def test_account_creation_runs_beside_the_event_loop(monkeypatch):
    """While one user's account is being made, the loop keeps serving (other spawns, API calls)."""
    started, release, made = threading.Event(), threading.Event(), []

    def slow_useradd(name, group, allow_existing):
        started.set()
        release.wait(60)  # held until the loop has shown it still runs
        made.append(name)

    monkeypatch.setattr(accounts, "ensure_account", slow_useradd)
    spawner = hook_spawner("alice")

    async def scenario():
        hook = asyncio.ensure_future(ensure_account_hook(spawner))
        await asyncio.to_thread(started.wait, 60)
        ran_meanwhile = await asyncio.wait_for(asyncio.sleep(0, result="other work"), 10)
        assert not hook.done()
        release.set()
        await hook
        return ran_meanwhile

    assert asyncio.run(scenario()) == "other work"
    assert made == ["alice"]


def test_gpus_are_discovered_once_per_hub_in_a_thread(tmp_path):
    """Two spawn pages cost one ``nvidia-smi`` call, made off the event loop's thread."""
    calls = tmp_path / "calls"
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho \"$PPID\" >> {calls}\ncat <<'END'\n{SMI_OUTPUT}END\n")
    smi.chmod(0o755)
    settings = {"discovery": "nvidia-smi", "nvidia_smi": str(smi)}
    profiles = [{"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1, "groups": []}]

    def spawner(name):
        user = SimpleNamespace(name=name, groups=[], url=f"/user/{name}/")
        return DeepvreSpawner(user=user, profiles=profiles, gpu_settings=settings, personal_mode=True)

    async def pages():
        loop_thread = threading.get_ident()
        seen = []
        original = DeepvreSpawner.allocator.fget

        def watched(self):
            seen.append(threading.get_ident())
            return original(self)

        DeepvreSpawner.allocator = property(watched)
        try:
            forms = [await s.options_form(s) for s in (spawner("alice"), spawner("bob"))]
        finally:
            DeepvreSpawner.allocator = property(original)
        return forms, seen[0] != loop_thread

    forms, first_off_loop = asyncio.run(pages())
    assert all("GPUs free now: 2 of 2" in form for form in forms)
    assert first_off_loop
    assert len(calls.read_text().splitlines()) == 1


def test_existing_account_is_checked_in_place():
    """An existing account needs no thread, and is still checked: a system account is refused."""
    assert accounts.exists("daemon") and not accounts.exists("hubnosuchaccount")
    spawner = hook_spawner("daemon")
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(ensure_account_hook(spawner))
    assert refused.value.status_code == 403 and "system account" in refused.value.jupyterhub_message
