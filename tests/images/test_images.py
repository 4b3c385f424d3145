"""The images, built without a registry and run.

images/build.py makes a Debian root file system with mmdebstrap, imports it into podman and builds
every Dockerfile FROM it; an image already built from the same sources is reused (``make images``
in .ci/run builds them before the tests). Then:

- the single-user image starts ``jupyterhub-singleuser`` with deepvre's server and lab extensions;
- the hub image starts the marketplace service, which answers another container on its port;
- each image's deepvre is the checkout's version.

The GPU image (TensorFlow's CUDA libraries as PyPI wheels, several GB) builds only on request:
``pytest -m images_gpu tests/images`` (or ``DEEPVRE_IMAGES_GPU=1``).
"""

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.prereqs import REPO, require, require_program

pytestmark = [pytest.mark.images, pytest.mark.timeout(3600)]

SPEC = importlib.util.spec_from_file_location("deepvre_images_build", Path(REPO) / "images" / "build.py")
build = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(build)


def podman(*args, check=True, timeout=120):
    result = subprocess.run(["podman", *args], env=build.podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=90, container=None):
    """GET ``url`` until it answers (any HTTP status); returns (status, headers, body)."""
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(NoRedirect)
    while True:
        try:
            with opener.open(url, timeout=5) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read().decode()
        except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
            if time.monotonic() > deadline:
                logs = container_log(container) if container else ""
                raise AssertionError(f"{url} did not answer within {timeout} s ({err}); container log:\n{logs}") from err
            time.sleep(1)


def container_log(name):
    out = podman("logs", name, check=False)
    return out.stdout + out.stderr


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def checkout_version():
    """deepvre's version in the checkout: setup.cfg's, else what the project's venv installed."""
    version = build.checkout_version(REPO)
    if version:
        return version
    out = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('deepvre'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def podman_ready():
    require_program("podman")
    require_program("mmdebstrap")
    require(os.geteuid() == 0, "needs root (rootful podman: mmdebstrap and the image builds)")


@pytest.fixture(scope="module")
def images(podman_ready, tmp_path_factory):
    """The CPU images: built, or reused when the same sources were built before."""
    log_path = tmp_path_factory.mktemp("images") / "build.log"
    with open(log_path, "a") as log:
        try:
            base, _ = build.ensure_base(log)
            built = {name: build.build(name, log, base) for name in build.DEFAULT_IMAGES}
        except build.BuildError as err:
            pytest.fail(f"{err}\n--- build log (end) ---\n{log_path.read_text()[-6000:]}")
    return built


@pytest.fixture
def container_name():
    """A unique container name, removed afterwards whatever happened."""
    names = []

    def make(prefix):
        names.append(f"deepvre-test-{prefix}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        podman("rm", "--force", "--time", "2", name, check=False)


def image_version(tag):
    out = podman("run", "--rm", "--network", "none", tag,
                 "python3", "-c", "import importlib.metadata as m; print(m.version('deepvre'))")
    return out.stdout.strip()


@pytest.mark.parametrize("name", build.DEFAULT_IMAGES)
def test_image_holds_the_checkouts_deepvre(images, name):
    assert image_version(images[name]["tag"]) == checkout_version()


ENVIRONMENT_PROBE = "import json; from deepvre.runs import platform; print(json.dumps(platform.capture()))"


@pytest.mark.parametrize("name", build.DEFAULT_IMAGES)
def test_the_images_environment_record_hashes_the_lock_it_installed(images, name):
    """What every run and published version records of its environment, inside the image: the
    sha256 of the lock the image installed (images/<image>/requirements.lock, kept at build time), and
    the image and its ID as the container spawner passes them ($DEEPVRE_IMAGE, $DEEPVRE_IMAGE_ID)."""
    import hashlib

    tag = images[name]["tag"]
    image_id = podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    out = podman("run", "--rm", "--network", "none", "-e", f"DEEPVRE_IMAGE={tag}", "-e", f"DEEPVRE_IMAGE_ID={image_id}",
                 tag, "python3", "-c", ENVIRONMENT_PROBE, timeout=300)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    lock = Path(REPO) / "images" / name / "requirements.lock"
    assert record["lock"] == {"file": "/opt/deepvre/share/deepvre/requirements.lock",
                              "sha256": hashlib.sha256(lock.read_bytes()).hexdigest()}, record["lock"]
    assert record["container"] == {"in_container": True, "image": tag, "image_digest": f"sha256:{image_id}"}
    assert record["packages"]["deepvre"] == checkout_version()


def test_images_are_reused_for_the_same_sources(images):
    """A second build of unchanged sources is the same image, not a new build."""
    with open(os.devnull, "w") as log:
        # the fixture's image, unless a source changed since (then it stays for the other tests)
        first = build.build("singleuser-cpu", log, prune=False)
        again = build.build("singleuser-cpu", log, prune=False)
    assert again["reused"] and again["tag"] == first["tag"]
    assert again["tag"].startswith("localhost/deepvre/singleuser-cpu:src-")


# What a single-user server asks its hub at start (GET /hub/api: the hub's version; it exits when no
# hub answers). Served from the hub image by Python's http.server: the test needs no hub beyond that.
HUB_API_STUB = """
import http.server, json, jupyterhub
class Hub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"version": jupyterhub.__version__}).encode()
        self.send_response(200)
        self.send_header("X-JupyterHub-Version", jupyterhub.__version__)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET  # activity reports
http.server.HTTPServer(("0.0.0.0", 8081), Hub).serve_forever()
"""


def plain(result):
    """A command's output without colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)


def container_address(name):
    address = podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
    assert address, f"{name} has no address on podman's default network"
    return address


def test_singleuser_starts_jupyterhub_singleuser_with_deepvre(images, container_name):
    hub_api = container_name("hub-api")
    podman("run", "--detach", "--name", hub_api, images["hub"]["tag"], "python3", "-c", HUB_API_STUB)
    tag = images["singleuser-cpu"]["tag"]
    name, port, user = container_name("singleuser"), free_port(), "alice"
    prefix = f"/user/{user}/"
    env = {  # what a hub's spawner passes
        "JUPYTERHUB_API_TOKEN": uuid.uuid4().hex,
        "JUPYTERHUB_API_URL": f"http://{container_address(hub_api)}:8081/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:8888{prefix}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }
    args = ["run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8888"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    podman(*args, tag)  # the image's own CMD: jupyterhub-singleuser, as the image's non-root user

    status, _, body = wait_http(f"http://127.0.0.1:{port}{prefix}api", container=name)
    assert status == 200 and "version" in json.loads(body)
    # a browser without a login is sent to the hub's OAuth: the server runs as a hub's single-user server
    status, headers, _ = wait_http(f"http://127.0.0.1:{port}{prefix}lab", container=name)
    assert status == 302 and "/hub/api/oauth2/authorize" in headers["Location"]

    logs = container_log(name)
    assert "deepvre_jupyter | extension was successfully loaded" in logs, logs
    assert podman("exec", name, "id", "-u").stdout.strip() == "1000"
    lab = plain(podman("exec", name, "jupyter", "labextension", "list"))
    assert any(line.split()[:1] == ["deepvre"] and "enabled" in line and "OK" in line for line in lab.splitlines()), lab
    servers = plain(podman("exec", name, "jupyter", "server", "extension", "list"))
    assert "deepvre_jupyter enabled" in servers, servers


def test_the_pods_post_start_hook_copies_the_notebooks_once(images, container_name):
    """The Kubernetes pod's postStart hook (deepvre_hub.examples.lifecycle_hooks), exec'd in a
    started single-user container as the image's user, as the kubelet does: the notebooks land in
    the home once; the user's edit and deletion survive the next start."""
    from deepvre_hub import examples

    name = container_name("examples")
    podman("run", "--detach", "--network", "none", "--name", name, images["singleuser-cpu"]["tag"], "sleep", "600")
    hook = examples.lifecycle_hooks()["postStart"]["exec"]["command"]
    podman("exec", name, *hook)
    listing = podman("exec", name, "find", "/home/jovyan/deepvre-examples", "-name", "*.ipynb").stdout.split()
    assert sorted(p.removeprefix("/home/jovyan/deepvre-examples/") for p in listing) == [
        "biology/biology.ipynb", "index.ipynb", "lattice-qcd/lattice-qcd.ipynb", "satellite/satellite.ipynb",
        "security/security.ipynb"]
    owner = podman("exec", name, "stat", "-c", "%u", "/home/jovyan/deepvre-examples/index.ipynb").stdout.strip()
    assert owner == "1000"
    podman("exec", name, "sh", "-c", "echo mine > /home/jovyan/deepvre-examples/index.ipynb"
           " && rm /home/jovyan/deepvre-examples/satellite/satellite.ipynb")
    podman("exec", name, *hook)  # the next start
    assert podman("exec", name, "cat", "/home/jovyan/deepvre-examples/index.ipynb").stdout == "mine\n"
    gone = podman("exec", name, "test", "-e", "/home/jovyan/deepvre-examples/satellite/satellite.ipynb", check=False)
    assert gone.returncode == 1


def kubernetes_marketplace():
    """The marketplace's hub-service entry as the Kubernetes deployment runs it in the hub image
    (the z2jh values rendered from tests/kubernetes/settings.yaml): its command and environment,
    and its url, which the hub passes as ``$JUPYTERHUB_SERVICE_URL``."""
    import yaml

    from deepvre.site.settings import validate_settings
    from deepvre_hub.kubernetes import z2jh_values

    path = Path(REPO) / "tests" / "kubernetes" / "settings.yaml"
    values = z2jh_values(validate_settings(yaml.safe_load(path.read_text()), source=path))
    name, service = next((n, s) for n, s in values["hub"]["services"].items() if "deepvre.market" in s["command"])
    return name, service


def test_hub_image_marketplace_answers_another_container(images, container_name):
    hub, client = images["hub"]["tag"], images["singleuser-cpu"]["tag"]
    service_name, service = kubernetes_marketplace()
    port = urlparse(service["url"]).port
    prefix = f"/services/{service_name}/"
    name = container_name("market")
    env = {  # what the hub passes to a managed service, then the entry's own environment
        "JUPYTERHUB_SERVICE_URL": service["url"],
        "JUPYTERHUB_SERVICE_NAME": service_name,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_API_TOKEN": uuid.uuid4().hex,
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",  # not needed to answer these requests
        "JUPYTERHUB_CLIENT_ID": f"service-{service_name}",
        **service.get("environment", {}),
    }
    # the hub's state volume (the chart mounts a PersistentVolume there): a tmpfs the hub's uid may write
    args = ["run", "--detach", "--name", name]
    for folder in {str(Path(v).parent) for k, v in env.items() if k.endswith("_DIR")}:
        args += ["--tmpfs", f"{folder}:rw,mode=1777"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    podman(*args, hub, *service["command"])
    address = container_address(name)

    # the other container: the single-user image, asking over podman's bridge network
    probe = (
        "import sys, time, urllib.error, urllib.request\n"
        "base = sys.argv[1]\n"
        "for _ in range(90):\n"
        "    try:\n"
        "        spec = urllib.request.urlopen(base + 'api/openapi.yaml', timeout=5)\n"
        "        break\n"
        "    except (urllib.error.URLError, ConnectionError):\n"
        "        time.sleep(1)\n"
        "print(spec.status, spec.read().decode().count('/api/models'))\n"
        "try:\n"
        "    urllib.request.urlopen(base + 'api/models', timeout=5)\n"
        "except urllib.error.HTTPError as err:\n"
        "    print(err.code)\n"
    )
    url = f"http://{address}:{port}{prefix}"
    out = podman("run", "--rm", client, "python3", "-c", probe, url, timeout=180, check=False)
    logs = container_log(name)
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\n--- marketplace log ---\n{logs}"
    spec_line, models_status = out.stdout.split("\n")[:2]
    assert spec_line.split()[0] == "200" and int(spec_line.split()[1]) > 0  # the OpenAPI document, served
    assert models_status == "401"  # the API itself wants a hub token
    assert f"listening on http://0.0.0.0:{port}" in logs

    # the first start seeds the base model without TensorFlow, from the image's own conversion
    deadline = time.monotonic() + 120
    while "[marketplace seed] published" not in logs and "[marketplace seed] failed" not in logs:
        assert time.monotonic() < deadline, logs
        time.sleep(2)
        logs = container_log(name)
    assert "publishing the conversion made when the image was built" in logs, logs
    assert "[marketplace seed] published mobilenet-v2-imagenet 1.0.0 (owner deepvre)" in logs, logs
    read = ("from deepvre.market.catalog import Caller, Catalog\n"
            "e = Catalog().show(Caller('nobody'), 'mobilenet-v2-imagenet', '1.0.0')\n"
            "print(e['owner'], e['visibility'], e['metadata']['deepvre']['metrics']['chelsea_top1'])\n")
    out = podman("exec", "--env", f"DEEPVRE_MARKET_DIR={env['DEEPVRE_MARKET_DIR']}", name, "python3", "-c", read)
    assert out.stdout.split("\n")[0] == "deepvre public Egyptian cat", out.stdout + out.stderr


# The chart's hub applies hub.config verbatim and then runs the extraConfig snippets in key order
# (tests/kubernetes/conftest.py::hub_config); here inside the hub image, with the image's packages.
HUB_CONFIG_RUN = """
import json
from traitlets.config import Config
hub = json.load(open('/tmp/values.json'))['hub']
c = Config()
for cls, traits in (hub.get('config') or {}).items():
    c[cls].update(traits)
for key, snippet in sorted((hub.get('extraConfig') or {}).items()):
    exec(compile(snippet, key, 'exec'), {'c': c})
from kubespawner import KubeSpawner
unknown = sorted(set(c.KubeSpawner) - set(KubeSpawner.class_trait_names()))
print(json.dumps({'unknown': unknown, 'traits': sorted(c.KubeSpawner), 'image': c.KubeSpawner.image}))
"""


def test_hub_image_runs_deepvres_hub_configuration(images, container_name, tmp_path):
    """The hub image holds what deepvre's part of the chart's hub configuration imports (its own cut of
    the lock): every extraConfig snippet runs, and every rendered setting is a trait of the image's
    KubeSpawner."""
    import yaml

    from deepvre.site.settings import validate_settings
    from deepvre_hub.kubernetes import z2jh_values
    from tests.kubernetes.conftest import hub_config, hub_environment

    path = Path(REPO) / "tests" / "kubernetes" / "settings.yaml"
    values = z2jh_values(validate_settings(yaml.safe_load(path.read_text()), source=path))
    (tmp_path / "values.json").write_text(json.dumps(values))
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "values.json", 0o644)
    args = ["run", "--rm", "--network", "none", "-v", f"{tmp_path / 'values.json'}:/tmp/values.json:ro"]
    for key, value in hub_environment(values).items():
        args += ["--env", f"{key}={value}"]
    out = podman(*args, images["hub"]["tag"], "python3", "-c", HUB_CONFIG_RUN, timeout=180, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    here = hub_config(values).KubeSpawner  # the same configuration run in this checkout
    assert got == {"unknown": [], "traits": sorted(here), "image": here.image}, got


def gpu_requested(config):
    return "images_gpu" in (config.getoption("-m") or "") or os.environ.get("DEEPVRE_IMAGES_GPU") == "1"


@pytest.mark.images_gpu
def test_gpu_image_builds_with_tensorflows_cuda_wheels(request, podman_ready, tmp_path):
    if not gpu_requested(request.config):
        pytest.skip("the GPU image builds on request: pytest -m images_gpu tests/images (several GB of CUDA wheels)")
    with open(tmp_path / "build.log", "a") as log:
        try:
            record = build.build("singleuser-gpu", log)
        except build.BuildError as err:
            pytest.fail(f"{err}\n{(tmp_path / 'build.log').read_text()[-6000:]}")
    probe = ("import importlib.metadata as m, tensorflow as tf\n"
             "print(tf.__version__, m.version('deepvre'), any(d.metadata['Name'].startswith('nvidia-cudnn')"
             " for d in m.distributions()), 'tensorflow-cpu' in {d.metadata['Name'] for d in m.distributions()})")
    out = podman("run", "--rm", "--network", "none", record["tag"], "python3", "-c", probe, timeout=300)
    tf_version, deepvre_version, cudnn, cpu_build = out.stdout.split()[-4:]
    assert tf_version == "2.21.0" and deepvre_version == checkout_version()
    assert cudnn == "True" and cpu_build == "False"


def test_build_context_leaves_out_what_the_image_does_not_need():
    """The hash (and podman) see the package's sources, not the venv, tests or docs."""
    files = build.context_files(REPO, build.ignore_patterns(Path(REPO) / "images/singleuser-cpu/Dockerfile"))
    tops = {f.split("/")[0] for f in files}
    assert {"setup.cfg", "deepvre", "extensions", "hub"} <= tops
    assert not tops & {".venv", ".git", "node_modules", "tests", "docs", "requirements.lock"}
    assert [f for f in files if f.startswith("images/")] == ["images/singleuser-cpu/requirements.lock"]
    assert not any("__pycache__" in f for f in files)
