"""Build deepvre's images without a registry.

No registry is reachable on the project's machines, so no base image can be pulled. Instead a
Debian bookworm root file system is made with Debian's own ``mmdebstrap``, imported into podman,
and every Dockerfile is built FROM it (their ``BASE_IMAGE`` build argument; its default stays the
upstream image). pip inside the builds reaches PyPI with ``--network host``.

    python images/build.py                      # the base (once), then singleuser-cpu and hub
    python images/build.py singleuser-gpu       # the GPU image (TensorFlow's CUDA wheels): on request
    python images/build.py --json out.json --compressed-size

An image is tagged ``localhost/deepvre/NAME:src-HASH``, HASH being that of its build context (the
files its ``Dockerfile.dockerignore`` lets through), its Dockerfile and its base (and the images
its build stages start from: the hub's takes the single-user image's base model): a second run with
the same sources reuses the image instead of building it again. The newest build is also tagged
with deepvre's version.
"""

import argparse
import configparser
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_IMAGES = ("singleuser-cpu", "hub")
# An image built FROM another of them (a build stage): the build argument that names it, and which.
# The hub image takes the base model converted in the single-user image (images/hub/Dockerfile).
STAGE_IMAGES = {"hub": ("WEIGHTS_IMAGE", "singleuser-cpu")}
ALL_IMAGES = ("singleuser-cpu", "hub", "singleuser-gpu")
REGISTRY = "localhost/deepvre"

# The base: Debian's Python (3.11 in bookworm, the lock's Python) and its venv module, nothing else.
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
# Where the root file system tarball is kept between runs (mmdebstrap takes 1-2 minutes).
CACHE = Path(os.environ.get("DEEPVRE_IMAGES_CACHE", "/var/tmp/deepvre-images"))
# The machine's CA bundle: mounted into the build steps and named by PIP_CERT, for machines that
# reach PyPI through a TLS-inspecting proxy. Nothing of it stays in the image.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_BUILD = "/run/deepvre-ca.crt"
# The project's podman settings (runc, ulimits that fit an unprivileged build), unless the caller
# chose a containers.conf of their own.
CONTAINERS_CONF = HERE / "containers.conf"


class BuildError(RuntimeError):
    pass


# -- pure parts: names, hashes, command lines ---------------------------------------------------


def base_key(suite=SUITE, packages=BASE_PACKAGES):
    """A short key for one mmdebstrap recipe (it names the tarball and the base image)."""
    return hashlib.sha256(f"{suite} minbase {' '.join(sorted(packages))}".encode()).hexdigest()[:10]


def base_tag(suite=SUITE, packages=BASE_PACKAGES):
    return f"{REGISTRY}/debian-base:{suite}-{base_key(suite, packages)}"


def mmdebstrap_command(tarball, suite=SUITE, packages=BASE_PACKAGES):
    """Debian's minimal variant plus ``packages``, from Debian's own mirror, as a tarball."""
    return ["mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(tarball)]


def ignore_patterns(dockerfile):
    """The patterns of ``<Dockerfile>.dockerignore`` (comments and blank lines dropped)."""
    path = Path(f"{dockerfile}.dockerignore")
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def ignored(relpath, patterns):
    """Whether the context leaves ``relpath`` out: a pattern matches the path or a folder above it
    (``**/`` matches any depth, as in .dockerignore; ``!`` exceptions are not used here)."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern[3:] if pattern.startswith("**/") else None
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if bare and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], bare):
                return True
    return False


def context_files(root, patterns):
    """Every file the build context sends (relative paths, sorted)."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        dirs[:] = sorted(d for d in dirs if not ignored(rel + d, patterns))
        found += [rel + f for f in files if not ignored(rel + f, patterns)]
    return sorted(found)


def source_hash(dockerfile, root=REPO, base=""):
    """The hash of what decides the image: the Dockerfile, its ignore file, every context file
    (name and content) and the base image's id."""
    digest = hashlib.sha256()
    dockerfile = Path(dockerfile)
    for extra in (dockerfile, Path(f"{dockerfile}.dockerignore")):
        if extra.exists():
            digest.update(extra.name.encode() + b"\0" + extra.read_bytes() + b"\0")
    digest.update(base.encode() + b"\0")
    for rel in context_files(root, ignore_patterns(dockerfile)):
        path = Path(root) / rel
        digest.update(rel.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"->" + os.readlink(path).encode())
        elif path.is_file():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def image_tag(name, digest):
    return f"{REGISTRY}/{name}:src-{digest[:12]}"


def build_command(name, tag, base, root=REPO, ca_bundle=CA_BUNDLE, stages=None):
    """``podman build`` for ``images/NAME/Dockerfile`` FROM ``base``, with the build context at
    the repository root (as the Dockerfiles expect) and the host's network for pip. ``stages``:
    ``{build argument: image}`` for the images its build stages start FROM."""
    command = ["podman", "build", "--network", "host", "--layers", "-f", str(HERE / name / "Dockerfile"),
               "--build-arg", f"BASE_IMAGE={base}", "-t", tag]
    for arg, image in (stages or {}).items():
        command += ["--build-arg", f"{arg}={image}"]
    if ca_bundle and Path(ca_bundle).exists():
        command += ["-v", f"{ca_bundle}:{CA_IN_BUILD}:ro", "--build-arg", f"PIP_CERT={CA_IN_BUILD}"]
    return command + [str(root)]


def checkout_version(root=REPO):
    """deepvre's version in the checkout (setup.cfg), or None when it is computed at build time."""
    parser = configparser.ConfigParser()
    parser.read(Path(root) / "setup.cfg")
    version = parser.get("metadata", "version", fallback="").strip()
    return version if version and ":" not in version else None


# -- podman -------------------------------------------------------------------------------------


def podman_env():
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and not Path("/etc/containers/containers.conf").exists():
        env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def run(command, log=None, **kwargs):
    """Run ``command``; its output goes to ``log`` (a file) or is captured. Raises BuildError."""
    if log is None:
        result = subprocess.run(command, env=podman_env(), capture_output=True, text=True, **kwargs)
        if result.returncode:
            raise BuildError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    result = subprocess.run(command, env=podman_env(), stdout=log, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode:
        raise BuildError(f"{' '.join(command)} failed ({result.returncode}); its output is in {log.name}")
    return ""


def image_exists(tag):
    return subprocess.run(["podman", "image", "exists", tag], env=podman_env()).returncode == 0


def image_id(tag):
    return run(["podman", "image", "inspect", "--format", "{{.Id}}", tag]).strip()


def image_size(tag):
    """Uncompressed size in bytes (what ``docker images`` shows)."""
    return int(run(["podman", "image", "inspect", "--format", "{{.Size}}", tag]).strip())


def compressed_size(tag):
    """Bytes a registry would store: the image saved with gzip-compressed layers (docker-dir)."""
    folder = Path(tempfile.mkdtemp(prefix="deepvre-image-size-", dir=CACHE))
    try:
        run(["podman", "save", "--format", "docker-dir", "--compress", "-o", str(folder / "image"), tag])
        return sum(p.stat().st_size for p in (folder / "image").iterdir() if p.is_file())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_older(name, keep):
    """Untag the images of ``name`` built from earlier sources (``src-*`` but ``keep``); the layers
    they share with ``keep`` (the base, the lock's packages) stay."""
    tags = run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", f"{REGISTRY}/{name}"]).split()
    older = [t for t in tags if t.split(":")[-1].startswith("src-") and t != keep]
    if older:
        subprocess.run(["podman", "rmi", *older], env=podman_env(), capture_output=True)


def ensure_base(log):
    """The Debian base image: imported once from a cached mmdebstrap tarball. Returns its tag and
    the seconds spent (0 when both were there)."""
    tag = base_tag()
    if image_exists(tag):
        return tag, 0.0
    start = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"rootfs-{SUITE}-{base_key()}.tar"
    if not tarball.exists():
        partial = tarball.with_suffix(".partial.tar")
        partial.unlink(missing_ok=True)
        run(mmdebstrap_command(partial), log)
        partial.rename(tarball)
    run(["podman", "import", str(tarball), tag], log)
    return tag, time.monotonic() - start


def build(name, log, base=None, measure_compressed=False, prune=True):
    """Build ``images/NAME`` (or reuse the image of the same sources). Returns a record of it.
    ``prune``: untag the images of earlier sources."""
    labext = REPO / "extensions/deepvre_jupyter/labextension/static"
    if not labext.is_dir():
        raise BuildError(f"{labext} is missing: build the lab extension first (make labextension)")
    base = base or ensure_base(log)[0]
    stages = {}
    if name in STAGE_IMAGES:  # that image first (reused when its sources are unchanged)
        arg, other = STAGE_IMAGES[name]
        stages[arg] = build(other, log, base, prune=False)["tag"]
    dockerfile = HERE / name / "Dockerfile"
    ids = "\0".join([image_id(base), *(image_id(t) for t in stages.values())])
    tag = image_tag(name, source_hash(dockerfile, REPO, ids))
    reused = image_exists(tag)
    start = time.monotonic()
    if not reused:
        run(build_command(name, tag, base, stages=stages), log)
    seconds = time.monotonic() - start
    version = checkout_version()
    if version:
        run(["podman", "tag", tag, f"{REGISTRY}/{name}:{version}"])
    if prune:
        remove_older(name, tag)
    record = {"image": name, "tag": tag, "reused": reused, "build_s": round(seconds, 1), "size_bytes": image_size(tag)}
    if measure_compressed:
        record["compressed_bytes"] = compressed_size(tag)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help=f"any of {', '.join(ALL_IMAGES)} (default: {' '.join(DEFAULT_IMAGES)})")
    parser.add_argument("--json", help="write the build times and sizes here")
    parser.add_argument("--compressed-size", action="store_true", help="also measure each image's compressed size")
    parser.add_argument("--log", default=str(CACHE / "build.log"), help="podman's output (default: %(default)s)")
    args = parser.parse_args(argv)
    names = args.images or list(DEFAULT_IMAGES)
    unknown = sorted(set(names) - set(ALL_IMAGES))
    if unknown:
        parser.error(f"no such image: {', '.join(unknown)} (known: {', '.join(ALL_IMAGES)})")
    for program in ("podman", "mmdebstrap"):
        if not shutil.which(program):
            sys.exit(f"{program} is missing: apt-get install mmdebstrap podman buildah runc uidmap slirp4netns fuse-overlayfs")
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    records = []
    with open(args.log, "a") as log:
        try:
            base, base_s = ensure_base(log)
            records.append({"image": "debian-base", "tag": base, "reused": base_s == 0, "build_s": round(base_s, 1),
                            "size_bytes": image_size(base)})
            for name in names:
                records.append(build(name, log, base, args.compressed_size))
                r = records[-1]
                done = "reused" if r["reused"] else f"built in {r['build_s']:.0f} s"
                print(f"{r['tag']}: {done}, {r['size_bytes'] / 1e9:.2f} GB", flush=True)
        except BuildError as err:
            sys.exit(str(err))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    return records


if __name__ == "__main__":
    main()
