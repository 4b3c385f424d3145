"""Verification records (deepvre.market.verifications): appended, signed by the service, immutable."""

import json
import os

import pytest
import sqlalchemy as sa

from deepvre.errors import Invalid, NotFound
from deepvre.market import verifications
from deepvre.market.catalog import Caller
from deepvre.runs import platform

ALICE, BOB = Caller("alice"), Caller("bob")


@pytest.fixture
def key(tmp_path):
    path = str(tmp_path / "state" / verifications.KEY_FILE)
    return path, verifications.signing_key(path)


def claim(result="verified", **extra):
    return {"result": result, "reason": "", "environment": platform.capture(),
            "metrics": {"accuracy": {"published": 1.0, "reproduced": 1.0, "difference": 0.0, "tolerance": 0.02}},
            **extra}


def test_records_are_signed_appended_and_checked(catalog, publish, key):
    path, signing = key
    publish("alice", visibility="public")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert verifications.signing_key(path) is signing  # one key per path and process
    first = verifications.add(catalog, BOB, "tiny-colours", "1.0.0", claim(), signing)
    second = verifications.add(catalog, ALICE, "tiny-colours", "1.0.0", claim("drifted", reason="accuracy off"), signing)
    assert (first["verifier"], second["verifier"]) == ("bob", "alice")
    assert first["valid"] and second["valid"] and first["signature"] != second["signature"]
    found = verifications.records(catalog, BOB, "tiny-colours", "1.0.0", signing)
    assert [r["id"] for r in found] == [first["id"], second["id"]]
    assert verifications.badge(found) == "drifted" and verifications.badge([]) == "unverified"
    # the version itself did not change
    assert catalog.show(ALICE, "tiny-colours", "1.0.0")["metadata"]["deepvre"]["metrics"] == {"accuracy": 1.0}
    # another key (another service) does not vouch for these records
    other = verifications.signing_key(str(os.path.dirname(path)) + "/other-key")
    assert not any(r["valid"] for r in verifications.records(catalog, BOB, "tiny-colours", "1.0.0", other))


def test_a_record_changed_in_the_database_reads_invalid(catalog, publish, key):
    _, signing = key
    publish("alice")
    made = verifications.add(catalog, BOB, "tiny-colours", "1.0.0", claim("drifted"), signing)
    with catalog.engine.begin() as conn:
        row = conn.execute(sa.text("SELECT record FROM verifications WHERE id = :i"), {"i": made["id"]}).scalar()
        forged = json.loads(row) | {"result": "verified"}
        conn.execute(sa.text("UPDATE verifications SET record = :r WHERE id = :i"), {"r": json.dumps(forged), "i": made["id"]})
    (found,) = verifications.records(catalog, ALICE, "tiny-colours", "1.0.0", signing)
    assert found["result"] == "verified" and found["valid"] is False
    assert verifications.badge([found]) == "unverified"


def test_a_claim_cannot_bring_its_own_verifier_time_or_signature(catalog, publish, key):
    _, signing = key
    publish("alice")
    for forged in ({"verifier": "alice"}, {"signature": "00" * 64}, {"time": "2020-01-01T00:00:00Z"}, {"valid": True}):
        with pytest.raises(Invalid, match="not accepted"):
            verifications.add(catalog, BOB, "tiny-colours", "1.0.0", claim(**forged), signing)
    with pytest.raises(Invalid, match="result"):
        verifications.add(catalog, BOB, "tiny-colours", "1.0.0", claim("fine"), signing)
    with pytest.raises(Invalid, match="environment: not an object"):
        verifications.add(catalog, BOB, "tiny-colours", "1.0.0", claim(environment=["python"]), signing)
    assert verifications.records(catalog, ALICE, "tiny-colours", "1.0.0", signing) == []


def test_a_private_models_records_are_its_owners(catalog, publish, key):
    _, signing = key
    publish("alice", visibility="private")
    verifications.add(catalog, ALICE, "tiny-colours", "1.0.0", claim(), signing)
    for call in (lambda: verifications.records(catalog, BOB, "tiny-colours", "1.0.0", signing),
                 lambda: verifications.add(catalog, BOB, "tiny-colours", "1.0.0", claim(), signing)):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound):
        verifications.records(catalog, ALICE, "tiny-colours", "9.9.9", signing)
    assert len(verifications.records(catalog, ALICE, "tiny-colours", "1.0.0", signing)) == 1


def test_verify_refuses_another_accounts_notebook_without_yes(tmp_path, tiny_model_dir):
    """``deepvre market verify`` runs the version's notebook as the caller: one another account
    published runs only after ``--yes``, and the refusal names the owner and the notebook's sha256."""
    import subprocess
    import sys
    from pathlib import Path

    from deepvre.market.catalog import Catalog
    from tests.market.conftest import artifact_files, make_document

    root = tmp_path / "market"
    catalog = Catalog(database_url=f"sqlite:///{root / 'catalog.sqlite'}", store_url=str(root / "artifacts"))
    entry = catalog.publish(make_document(), artifact_files(tiny_model_dir), "alice")
    env = dict(os.environ, DEEPVRE_MARKET_DIR=str(root))
    for key in ("DEEPVRE_MARKET_URL", "DEEPVRE_MARKET_TOKEN", "JUPYTERHUB_USER"):
        env.pop(key, None)
    deepvre = str(Path(sys.executable).parent / "deepvre")
    out = subprocess.run([deepvre, "market", "verify", "tiny-colours:1.0.0", "--runs-dir", str(tmp_path / "runs"),
                          "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    refusal = json.loads(out.stdout)
    assert refusal["error"] == "Forbidden"
    assert "published by alice" in refusal["errors"][0] and "--yes" in refusal["errors"][0]
    assert entry["files"]["training.ipynb"]["sha256"] in refusal["errors"][0]
    assert not (tmp_path / "runs").exists()  # nothing ran
    shown = subprocess.run([deepvre, "market", "show", "tiny-colours:1.0.0"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert "verification: unverified" in shown.stdout, shown.stdout + shown.stderr
