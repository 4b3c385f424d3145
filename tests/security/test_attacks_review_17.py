"""Hostile review of issue 17's changes: each test is an attack that must fail.

The base model's reserved name (``mobilenet-v2-imagenet``, published only by the system account
``deepvre``) on a real JupyterHub with the marketplace service (``tests/market/markethub.py``):
name variants, a new version, deprecate and visibility by another user and the admin, percent-
encoded paths; and a catalog where a user already held the name before the upgrade, which the
seed must not take for the hub's own base model. Users try to become ``deepvre`` on a real deepvre
hub by variants of the name (case, spaces, full-width letters). The model services and
preprocessing jobs of a real ``jupyter server`` with the deepvre extension
(``tests/serving/test_service_lifecycle.Server``): a decompression bomb, ``top_k`` out of range,
service references with paths in them, cluster names that dress ``slurm`` up.
"""

import json
import os
import re
import struct
import sys
import time
import zlib
from urllib.parse import quote

import pytest
import requests

from tests.extension.conftest import colours_market, colours_model  # noqa: F401 (fixtures)
from tests.hub.hubprocess import run_code
from tests.market.conftest import make_document
from tests.market.fuzz_hooks import MODEL, tar_of
from tests.market.markethub import market_hub
from tests.security.conftest import PASSWORD
from tests.security.test_examples_copy import hub as deepvre_hub  # noqa: F401 (a real local hub, as root)
from tests.security.test_examples_copy import user_with_server
from tests.serving.test_service_lifecycle import AUTH, Server

BASE = "mobilenet-v2-imagenet"


def publish_directly(state, name, owner, visibility="public", reserved_names=None):
    """Publish ``name`` 1.0.0 into the catalog the hub's marketplace will use, as ``owner``."""
    from deepvre.market.catalog import Catalog

    kwargs = {} if reserved_names is None else {"reserved_names": reserved_names}
    catalog = Catalog(database_url=f"sqlite:///{state}/market.sqlite", store_url=str(state / "artifacts"), **kwargs)
    folder = state / f"files-{name}-{owner}"
    folder.mkdir()
    (folder / "model.keras").write_bytes(MODEL)
    (folder / "training.ipynb").write_text("{}")
    catalog.publish(make_document(name, visibility=visibility),
                    {"model.keras": folder / "model.keras", "training.ipynb": folder / "training.ipynb"}, owner)
    catalog.engine.dispose()


def upload(url, token, name, version="1.0.0"):
    body = tar_of({"metadata.json": json.dumps(make_document(name, version)).encode(), "model.keras": MODEL,
                   "training.ipynb": b"{}"})
    headers = {"Content-Type": "application/x-tar", **({"Authorization": f"token {token}"} if token else {})}
    return requests.post(url + "api/models", data=body, headers=headers, timeout=120)


def as_user(hub, user):
    return {"Authorization": f"token {hub['tokens'][user]}"}


def seed_state(hub):
    return requests.get(hub["market_url"] + "api/status", headers=as_user(hub, "alice"), timeout=30).json()["seed"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A hub whose marketplace seeds (the base model is already in its catalog, as deepvre's)."""
    state = tmp_path_factory.mktemp("review17-seeded")
    publish_directly(state, BASE, "deepvre")
    with market_hub(state, {"seed_base_models": True}) as hub:
        yield hub


def base_entry(hub):
    r = requests.get(hub["market_url"] + f"api/models/{BASE}", headers=as_user(hub, "alice"), timeout=30)
    assert r.status_code == 200, r.text
    entry = r.json()
    return entry["owner"], entry["visibility"], [(v["version"], v["deprecated"]) for v in entry["versions"]]


INTACT = ("deepvre", "public", [("1.0.0", False)])


@pytest.mark.parametrize("name", [
    "Mobilenet-v2-imagenet", "MOBILENET-V2-IMAGENET", " mobilenet-v2-imagenet", "mobilenet-v2-imagenet ",
    "mobilenet-v2-imagenet\n", "mobilenet-v2-imagenet/..", "mobilenet-v2-imagenet%2F..", "../mobilenet-v2-imagenet",
    "mobilenet\u2010v2\u2011imagenet", "ｍｏｂｉｌｅｎｅｔ-v2-imagenet", "mobilenet-v2-imagenet\u200b",
    # the same name to a reader (and to packaging's canonical form): - and _ swapped or doubled
    "mobilenet_v2_imagenet", "mobilenet-v2_imagenet", "mobilenet--v2-imagenet", "mobilenet_-v2-imagenet",
])
def test_a_variant_of_the_reserved_name_is_refused_and_the_base_model_stays(seeded, name):
    assert seed_state(seeded)["state"] == "done"
    r = upload(seeded["market_url"], seeded["tokens"]["bob"], name)
    assert r.status_code in (403, 422), (name, r.status_code, r.text[:300])
    assert base_entry(seeded) == INTACT
    listed = requests.get(seeded["market_url"] + "api/models", headers=as_user(seeded, "alice"), timeout=30).json()
    names = [m["name"] for m in (listed["models"] if isinstance(listed, dict) else listed)]
    assert [n for n in names if "imagenet" in n.lower() or "ｉｍａｇｅｎｅｔ" in n] == [BASE], names


@pytest.mark.parametrize("attacker", ["bob", "root"])
def test_another_user_or_the_admin_cannot_add_a_version_of_the_base_model(seeded, attacker):
    for version in ("1.0.1", "2.0.0", "1.0.0-rc1", "01.0.0"):
        r = upload(seeded["market_url"], seeded["tokens"][attacker], BASE, version)
        assert r.status_code in (403, 409, 422), (version, r.status_code, r.text[:300])
    assert base_entry(seeded) == INTACT


@pytest.mark.parametrize("path", [BASE, quote(BASE, safe=""), BASE.replace("-", "%2D"), f"{BASE}%2F..%2F{BASE}"])
def test_another_user_cannot_deprecate_or_hide_the_base_model(seeded, path):
    for user in ("bob", "carol"):
        deprecate = requests.post(seeded["market_url"] + f"api/models/{path}/deprecate", timeout=30,
                                  json={"version": None, "deprecated": True}, headers=as_user(seeded, user))
        assert deprecate.status_code in (400, 403, 404), (path, deprecate.status_code, deprecate.text[:300])
        hide = requests.patch(seeded["market_url"] + f"api/models/{path}", json={"visibility": "private"},
                              headers=as_user(seeded, user), timeout=30)
        assert hide.status_code in (400, 403, 404), (path, hide.status_code, hide.text[:300])
    anonymous = requests.post(seeded["service_url"] + f"api/models/{path}/deprecate", json={}, timeout=30)
    assert anonymous.status_code == 401
    assert base_entry(seeded) == INTACT


def publish_as(hub, user, name, visibility, groups=None, **overrides):
    document = make_document(name, visibility=visibility, groups=groups, **overrides)
    body = tar_of({"metadata.json": json.dumps(document).encode(), "model.keras": MODEL, "training.ipynb": b"{}"})
    r = requests.post(hub["market_url"] + "api/models", data=body, timeout=120,
                      headers={"Content-Type": "application/x-tar", **as_user(hub, user)})
    assert r.status_code == 201, r.text[:300]


def test_facets_and_search_show_nothing_of_a_model_the_caller_may_not_see(seeded):
    """Issue 17's facets count tags, tasks, libraries, owners... of the models a caller sees: a
    private or another group's model must add no value and no count, nor be found by search."""
    # values no public model has (the AI4OS lists are closed; tags and summaries are free text)
    secret = {"tags": ["zq-private-tag"], "tasks": ["Reinforcement Learning"], "libraries": ["XGBoost"],
              "categories": ["AI4 tools"], "summary": "zqsecretword in the summary"}
    publish_as(seeded, "alice", "alice-private-zq", "private", **secret)
    publish_as(seeded, "carol", "carol-lab-zq", "group", groups=["lab"],
               **{**secret, "tags": ["zq-group-tag"]})

    def facets(user):
        r = requests.get(seeded["market_url"] + "api/facets", headers=as_user(seeded, user), timeout=30)
        assert r.status_code == 200, r.text[:300]
        return json.dumps(r.json())

    for word in ("zq", '"alice"', '"carol"', "alice-private", "carol-lab", '"private"', '"group"', "Reinforcement", "XGBoost", "AI4 tools"):
        assert word not in facets("bob"), (word, facets("bob"))
    assert "zq-private-tag" in facets("alice") and "zq-group-tag" in facets("carol")
    assert "zq-private-tag" not in facets("carol") and "zq-group-tag" not in facets("alice")
    for q in ("zqsecretword", "alice-private-zq", "carol", "zq-private-tag", "zqlib"):
        r = requests.get(seeded["market_url"] + "api/models", params={"q": q}, headers=as_user(seeded, "bob"), timeout=30)
        assert r.status_code == 200 and "zq" not in r.text and "alice" not in r.text, (q, r.text[:300])
    for path in ("api/facets", "api/models?q=zqsecretword", "api/status"):
        assert requests.get(seeded["service_url"] + path, timeout=30).status_code == 401  # anonymous


def test_a_name_a_user_held_before_the_upgrade_is_not_taken_for_the_base_model(tmp_path):
    """Before issue 17 anyone could publish ``mobilenet-v2-imagenet``. On such a catalog the seed
    must not report the hub's base model as in place while bob owns it: every notebook would
    fine-tune bob's weights. Either the name ends up the system account's, or the seed fails and
    says who holds it."""
    publish_directly(tmp_path, BASE, "bob", reserved_names=[])  # the catalog as it was before the upgrade
    with market_hub(tmp_path, {"seed_base_models": True}) as hub:
        owner = requests.get(hub["market_url"] + f"api/models/{BASE}", headers=as_user(hub, "alice"),
                             timeout=30).json()["owner"]
        deadline = time.monotonic() + 120
        while (seed := seed_state(hub))["state"] == "seeding" and time.monotonic() < deadline:
            time.sleep(1)
        assert owner == "deepvre" or seed["state"] != "done", (owner, seed)
        if owner != "deepvre":
            assert seed["state"] == "failed" and "bob" in seed["message"], seed
            # and a notebook's base model (ensure_imagenet_base, through the hub's REST API) is not bob's
            from deepvre.errors import Unavailable
            from deepvre.market.client import HTTPMarket
            from deepvre.training.lineage import ensure_imagenet_base

            with pytest.raises(Unavailable, match="bob"):
                ensure_imagenet_base(HTTPMarket(hub["market_url"], hub["tokens"]["alice"]))


# -- the model services and preprocessing jobs of a real jupyter server ----------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, colours_market):  # noqa: F811
    srv = Server(tmp_path_factory.mktemp("review17-server"), colours_market)
    srv.start()
    yield srv
    for proc in srv.services() if srv.proc.poll() is None else []:
        proc.kill()
    srv.stop()


@pytest.fixture(scope="module")
def service(server):
    status, svc = server.api("POST", "serve", {"model": "colours", "version": "1.0.0"})
    assert status == 201 and svc["state"] == "ready", svc
    return svc


def predict(server, svc, files=None, params=None):
    return requests.post(server.url + svc["url"].split(str(server.port), 1)[-1] + "models/colours/predict/",
                         headers={**AUTH, "Accept": "application/json"}, files=files, params=params, timeout=300)


def png_of_zeros(width, height):
    """A grey PNG of ``width`` x ``height`` pixels, a few hundred KB however large it decodes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pack, row = zlib.compressobj(9), bytes(width + 1)  # filter byte 0, then the row's pixels
    body = b"".join(pack.compress(row) for _ in range(height)) + pack.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_before_it_is_decoded(server, service):
    """A 12000 x 12000 PNG (144 Mpixels, under Pillow's own refusal at twice 89 Mpixels: it only
    warns) of about 150 KB would expand to 432 MB as RGB in the service, per request."""
    bomb = png_of_zeros(12000, 12000)
    assert len(bomb) < 1_000_000
    r = predict(server, service, files={"data": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 400 and "pixels" in r.json()["message"], (r.status_code, r.text[:300])
    small = png_of_zeros(64, 48)  # an ordinary image still classifies
    ok = predict(server, service, files={"data": ("small.png", small, "image/png")})
    assert ok.status_code == 200 and len(ok.json()["predictions"][0]) == 3, ok.text[:300]


def test_top_k_out_of_range_is_a_400(server, service):
    x = json.dumps([[[0.9, 0.0, 0.0]] * 8] * 8)
    for top_k in ("0", "-1", "101", "1000000000", "99999999999999999999999", "abc", "1.5"):
        r = predict(server, service, files={"array": (None, x), "top_k": (None, top_k)})
        assert r.status_code == 400, (top_k, r.status_code, r.text[:300])
    r = predict(server, service, files={"array": (None, x), "top_k": (None, "100")})
    assert r.status_code == 200 and [p["label"] for p in r.json()["predictions"][0]][:1] == ["red"], r.text[:300]


@pytest.mark.parametrize("ref", ["..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "colours:1.0.0%2F..%2F..%2Fetc%2Fpasswd",
                                 "..", "serve-1.log", "1", "colours%3A1.0.0%00", "colours:1.0.0%20"])
def test_a_service_reference_with_a_path_reads_no_file(server, service, ref):
    r = requests.get(f"{server.url}/deepvre/api/serve/{ref}", headers=AUTH, params={"tail": "50"}, timeout=60)
    assert r.status_code in (400, 403, 404, 405), (ref, r.status_code, r.text[:300])
    assert "root:" not in r.text and "DEEPaaS" not in r.text
    r = requests.delete(f"{server.url}/deepvre/api/serve/{ref}", headers=AUTH, timeout=60)
    assert r.status_code in (400, 403, 404, 405), (ref, r.status_code, r.text[:300])
    assert server.api("GET", f"serve/{service['ref']}")[1]["state"] == "ready"


def test_the_log_tail_takes_only_a_bounded_number(server, service):
    for tail in ("abc", "-5", "10001", "1e9", "99999999999999999999999"):
        status, body = server.api("GET", f"serve/{service['ref']}", params={"tail": tail})
        assert status == 400, (tail, status, body)
    r = requests.get(f"{server.url}/deepvre/api/serve/{service['ref']}", timeout=60)  # no token
    assert r.status_code in (401, 403), r.status_code


@pytest.mark.parametrize("cluster", ["SLURM", " slurm", "slurm ", "slurm\n", "Kubernetes", "kubernetes\t",
                                     "slurm://x", "slurm:1\n", 5, ["slurm"], {"kind": "slurm"}, True])
def test_cluster_names_that_dress_up_another_kind_are_refused(server, cluster):
    (server.root / "home" / "shards").mkdir(exist_ok=True)
    before = len(server.api("GET", "preprocess")[1]["jobs"])
    status, body = server.api("POST", "preprocess", {"kind": "images", "input": "shards", "cluster": cluster})
    assert status == 400, (cluster, status, body)
    assert len(server.api("GET", "preprocess")[1]["jobs"]) == before


# -- a real deepvre hub, as root (test_examples_copy's) -------------------------------------------


@pytest.mark.root
@pytest.mark.hub
def test_nobody_becomes_the_system_account_by_a_variant_of_its_name(deepvre_hub):  # noqa: F811
    hub = deepvre_hub
    admin = hub.login(hub.admin, hub.admin_password)
    admin_token = hub.token(admin, hub.admin)
    variants = ["Deepvre", "DEEPVRE", "deepvre ", " deepvre", "deepvre\t", "deepvre\n", "ｄｅｅｐｖｒｅ",
                "deepvre\u200b", "d\u0435epvre"]  # the last: a Cyrillic e
    for name in variants:
        hub.signup(name, PASSWORD)
        pending = re.findall(r"authorize/([^\"'/?]+)", admin.get(f"{hub.url}/hub/authorize", timeout=30).text)
        assert "deepvre" not in pending, (name, pending)
        session = hub.login(name, PASSWORD, check=False)
        assert not any(c.name.startswith("jupyterhub-session") for c in session.cookies), name
        made = requests.post(f"{hub.url}/hub/api/users/{quote(name, safe='')}", timeout=30,
                             headers={"Authorization": f"token {admin_token}"})
        assert made.status_code in (400, 404, 409) or made.json()["name"] != "deepvre", (name, made.text[:300])
    users = requests.get(f"{hub.url}/hub/api/users", headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert "deepvre" not in {u["name"] for u in users.json()}


@pytest.mark.root
@pytest.mark.hub
def test_code_a_user_plants_in_their_home_does_not_run_at_spawn(deepvre_hub):  # noqa: F811
    """The examples copy runs ``python -m deepvre_hub.examples`` as the user in their home at each
    spawn, started by the hub, outside the server (its cgroup, its limits, its end). Python puts
    the working folder first on sys.path for ``-m`` and reads the user's site-packages: a
    ``~/deepvre_hub/examples.py`` or a ``usercustomize.py`` there would run at every spawn."""
    hub = deepvre_hub
    name, token, home = user_with_server(hub, "pyplant")
    site = f".local/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    payload = ("import os\n"
               "open(os.path.join(os.path.expanduser('~'), 'ran-' + {kind!r}), 'w').write(open('/proc/self/cgroup').read())\n")
    run_code(hub.server_url(name), token, (
        "import os, shutil\n"
        "home = os.path.expanduser('~')\n"
        "os.makedirs(os.path.join(home, 'deepvre_hub'), exist_ok=True)\n"
        "open(os.path.join(home, 'deepvre_hub', '__init__.py'), 'w').write('')\n"
        f"open(os.path.join(home, 'deepvre_hub', 'examples.py'), 'w').write({payload.format(kind='cwd')!r})\n"
        f"os.makedirs(os.path.join(home, {site!r}), exist_ok=True)\n"
        f"open(os.path.join(home, {site!r}, 'usercustomize.py'), 'w').write({payload.format(kind='usersite')!r})\n"
        "os.remove(os.path.join(home, '.local/share/deepvre/examples-copied'))\n"
        "shutil.rmtree(os.path.join(home, 'deepvre-examples'))\n"))
    hub.stop_server(token, name)
    assert hub.spawn(token, name, profile="cpu").status_code in (201, 202)
    ran = {kind: open(os.path.join(home, f"ran-{kind}")).read() for kind in ("cwd", "usersite")
           if os.path.exists(os.path.join(home, f"ran-{kind}"))}
    assert not ran, f"the user's code ran at spawn, in cgroups {ran}"
    # the real copy ran instead
    assert os.path.isfile(os.path.join(home, "deepvre-examples", "biology", "biology.ipynb"))
    hub.stop_server(token, name)


def test_a_huge_upload_is_refused_before_the_service_takes_it(server, service):
    """DEEPaaS's ``client_max_size`` is 0 (no limit) unless set: a request's body of any size is
    taken (a file written to the uploads folder, then read whole; a text field kept in memory)."""
    body = bytes(150 * 2**20)  # zeros: neither an image nor JSON
    r = predict(server, service, files={"data": ("big.png", body, "image/png")})
    assert r.status_code == 413, (r.status_code, r.text[:300])
    assert server.api("GET", f"serve/{service['ref']}")[1]["state"] == "ready"


def test_a_deeply_nested_array_is_a_400(server, service):
    """JSON nested 100000 deep (200 KB): Python's parser runs out of recursion, which is no
    ValueError; the service must still answer 400 with the reason, and keep serving."""
    deep = "[" * 100_000 + "]" * 100_000
    r = predict(server, service, files={"array": (None, deep)})
    assert r.status_code == 400 and "array" in r.json()["message"], (r.status_code, r.text[:300])
    x = json.dumps([[[0.0, 0.0, 0.9]] * 8] * 8)
    ok = predict(server, service, files={"array": (None, x)})
    assert ok.status_code == 200 and ok.json()["predictions"][0][0]["label"] == "blue", ok.text[:300]


@pytest.fixture(scope="module")
def big_files_server(tmp_path_factory, colours_model):  # noqa: F811
    """A server whose catalog holds mallory's public model with a 70 MB training notebook (one
    long output) and a 20 MB run.json: what another user's model page reads."""
    from deepvre.market.catalog import Catalog

    root = tmp_path_factory.mktemp("review17-big")
    folder, doc = colours_model
    files = root / "files"
    files.mkdir()
    for path in folder.iterdir():
        (files / path.name).write_bytes(path.read_bytes())
    notebook = json.loads((files / "training.ipynb").read_text())
    notebook["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "x",
                              "outputs": [{"output_type": "stream", "name": "stdout", "text": "z" * (70 * 2**20)}]})
    (files / "training.ipynb").write_text(json.dumps(notebook))
    (files / "run.json").write_text(json.dumps({"id": "r1", "path": "z" * (20 * 2**20)}))
    market = root / "market"
    catalog = Catalog(database_url=f"sqlite:///{market}/catalog.sqlite", store_url=str(market / "artifacts"))
    document = json.loads(json.dumps(doc))
    document["deepvre"]["name"] = "bigbook"
    catalog.publish(document, {p.name: p for p in files.iterdir()}, "mallory", visibility="public")
    catalog.engine.dispose()
    srv = Server(root, market)
    srv.start()
    yield srv
    srv.stop()


def test_another_users_model_page_does_not_load_huge_files_into_the_server(big_files_server):
    """The model page (GET models/NAME: the run.json) and its plots (GET models/NAME/figures: the
    whole training notebook, parsed) read another user's files into the viewer's server, and
    keep up to 32 of them cached: a public model with big files would exhaust the memory of every
    server that opens its page. Files over a bound are not read."""
    import psutil

    server = big_files_server
    assert server.api("GET", "models")[0] == 200  # imports and caches of an ordinary request
    process = psutil.Process(server.proc.pid)
    before = process.memory_info().rss
    status, page = server.api("GET", "models/bigbook")
    assert status == 200 and page["name"] == "bigbook", page
    status, figures = server.api("GET", "models/bigbook/figures")
    assert status in (200, 413) and not figures.get("figures"), str(figures)[:300]
    grown = process.memory_info().rss - before
    assert grown < 40 * 2**20, f"the server grew by {grown // 2**20} MB reading another user's files"
