"""The catalog: publish, show, versions, search, pull, deprecate and visibility, with permissions.

Publishing (the Python API other parts call, e.g. ``deepvre weights convert``)::

    from deepvre.market.catalog import Catalog
    catalog = Catalog()                        # or Catalog.from_settings(settings)
    catalog.publish(metadata, {"model.keras": "out/model.keras",
                               "preprocessing.json": "out/preprocessing.json",
                               "metrics.json": "out/metrics.json",
                               "training.ipynb": "out/training.ipynb"},
                    owner="alice", visibility="public")

``metadata`` is an AI4OS v2 document with a ``deepvre`` section (see :mod:`.metadata`).

Artifact layout (one immutable version; each file stored by its sha256):

- ``model.keras``: the Keras 3 model (required; no Lambda layers; loaded with ``safe_mode=True``);
- ``preprocessing.json``: ``{"input": {"shape": [224, 224, 3], "dtype": "float32",
  "scale": 0.00784, "offset": -1.0, "mean": null, "std": null}, "labels": [...]}``: how an image
  becomes the model's input (``pixel * scale + offset``, then ``(x - mean) / std`` if given) and
  the class labels in output order (see :mod:`deepvre.serving.preprocessing`);
- ``metrics.json``: evaluation metrics (also copied into ``deepvre.metrics``);
- the executed training notebook (its name in ``deepvre.training.notebook``), as provenance;
- ``data-manifest.json``: training data file name -> sha256 (also ``deepvre.data``).

Who may do what: everyone reads public models; owners publish new versions of, deprecate and
change the visibility of their own models; ``group`` models are seen by members of their groups,
``private`` ones by their owner; models a caller may not see answer :class:`NotFound`, never
:class:`Forbidden`; admins see and curate everything. Reserved names (``Catalog.reserved_names``,
the hub's base models) are published only by the system account :data:`SYSTEM_ACCOUNT`, admins
included: nobody else can claim one or publish a version of it.
"""

import copy
import dataclasses
import fnmatch
import getpass
import json
import logging
import os
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import defer
from traitlets import Integer, List, Unicode, default
from traitlets.config import Configurable

from ..checksums import file_sha256
from ..errors import Conflict, Forbidden, NotFound  # no such model; not the caller's; versions are immutable
from ..site.environment import Environment
from . import fulltext, index, metadata, modelfile
from .store import ArtifactStore, IntegrityError, UploadTooLarge
from .tables import ModelGroup, ModelRow, VersionRow, now, visible_to

__all__ = ["Caller", "Catalog", "Conflict", "Forbidden", "NotFound", "UploadTooLarge"]

log = logging.getLogger("deepvre.market")


def card_fields(document):
    """What a model card shows from a version's document: ``metrics``, ``base_model`` (``{name,
    version}`` or None) and ``trainable`` (it names a training notebook)."""
    section = document.get(metadata.SECTION) or {}
    return {"metrics": section.get("metrics") or {}, "base_model": section.get("base_model"),
            "trainable": bool((section.get("training") or {}).get("notebook"))}


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is asking: a hub user (name, groups, admin) or the local user."""

    name: str
    groups: tuple = ()
    admin: bool = False

    @classmethod
    def local(cls):
        """The single user of a standalone catalog: owns and curates everything in it."""
        return cls(getpass.getuser(), (), True)


def default_root():
    base = Environment().market_dir
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "deepvre" / "market"


def _caller(who):
    return who if isinstance(who, Caller) else Caller(str(who))


def _version_key(text):
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


# The account that publishes the base models (the hub seeds them; the hub refuses it as a user).
SYSTEM_ACCOUNT = "deepvre"
# Names only it may publish, by default (``Catalog.reserved_names``; science.base_models' names).
RESERVED_NAMES = ("mobilenet-v2-imagenet",)


def reserved(name, patterns=RESERVED_NAMES):
    """Whether model ``name`` matches one of the reserved ``patterns`` (``fnmatch``), both in
    packaging's canonical form: ``mobilenet_v2_imagenet`` and ``mobilenet--v2-imagenet`` read as
    the reserved ``mobilenet-v2-imagenet``, so they are reserved too."""
    from packaging.utils import canonicalize_name

    return any(fnmatch.fnmatchcase(canonicalize_name(name), canonicalize_name(pattern)) for pattern in patterns)


# A query with this many hits or more is broad: see Catalog.search.
BROAD = 2000


class Catalog(Configurable):
    """A model catalog: an index database plus a content-addressed artifact store."""

    database_url = Unicode(
        config=True,
        help="SQLAlchemy URL of the index, e.g. sqlite:////srv/deepvre/market.sqlite or "
        "postgresql+psycopg://market@db/market. Default: catalog.sqlite under $DEEPVRE_MARKET_DIR "
        "(~/.local/share/deepvre/market).",
    )
    store_url = Unicode(
        config=True,
        help="fsspec URL of the artifact store, e.g. /srv/deepvre/artifacts or s3://bucket/deepvre. "
        "Default: artifacts/ under $DEEPVRE_MARKET_DIR.",
    )
    upload_limit = Integer(
        2 * 1024**3,
        config=True,
        help="Largest accepted artifact (all files of one version together), in bytes, e.g. 536870912.",
    )

    reserved_names = List(
        Unicode(),
        default_value=list(RESERVED_NAMES),
        config=True,
        help="Model names only the system account (deepvre) may publish: the hub's base models. "
        "fnmatch patterns, matched in packaging's canonical form (- and _ alike), e.g. ['mobilenet-v2-imagenet', 'base-*']; [] reserves none. Nobody else, "
        "admins included, may claim such a name or publish a version of it.",
    )

    @default("database_url")
    def _default_db(self):
        root = default_root()
        root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{root / 'catalog.sqlite'}"

    @default("store_url")
    def _default_store(self):
        return str(default_root() / "artifacts")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.database_url.startswith("sqlite:///") and ":memory:" not in self.database_url:
            Path(self.database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine, self.Session = index.open_index(self.database_url)
        self.store = ArtifactStore(self.store_url)

    @classmethod
    def from_settings(cls, settings):
        """A catalog from the site settings' ``marketplace:`` section (missing keys: defaults)."""
        section = (settings or {}).get("marketplace", settings or {})
        kwargs = {k: section[k] for k in ("database_url", "store_url", "upload_limit") if section.get(k)}
        if section.get("reserved_names") is not None:
            kwargs["reserved_names"] = list(section["reserved_names"])
        return cls(**kwargs)

    # -- reading -------------------------------------------------------------------------------

    def _visible_model(self, session, caller, name):
        row = session.get(ModelRow, name) if isinstance(name, str) else None
        if row is None or not session.scalar(sa.select(sa.literal(True)).where(ModelRow.name == name, visible_to(caller))):
            raise NotFound(f"no model named {name!r}")
        return row

    def _groups(self, session, name):
        return sorted(session.scalars(sa.select(ModelGroup.group).where(ModelGroup.name == name)))

    def _summary(self, row, groups=None):
        return {
            "name": row.name,
            "version": row.latest,
            "title": row.title,
            "summary": row.summary,
            "owner": row.owner,
            "visibility": row.visibility,
            "groups": groups if groups is not None else [],
            "deprecated": row.deprecated,
            "use_case": row.use_case,
            "tasks": json.loads(row.tasks),
            "libraries": json.loads(row.libraries),
            "categories": json.loads(row.categories),
            "tags": row.tags.split() if row.tags else [],
            "created": row.created.isoformat() + "Z",
            "updated": row.updated.isoformat() + "Z",
        }

    def search(self, caller, query="", filters=None, sort=None, limit=50, offset=0):
        """Visible models matching ``query`` (full text) and ``filters``; see :func:`index.search_query`."""
        caller = _caller(caller)
        limit, offset = max(1, min(int(limit), 1000)), max(0, int(offset))
        fulltext.refresh(self.engine, self.Session)
        with self.Session() as session:
            # One cheap count decides the plan. A broad query (BROAD hits or more) is tiered: title and
            # tag matches first. With `depth` or more hits only the best `depth` are ranked first; a
            # page that does not fill up (filters took rows) then asks again, ranking them all.
            relevance = fulltext.ranks_relevance(self.engine, query) and sort in (None, "relevance", "-relevance")
            depth = max(200, 4 * (limit + offset))
            hits = fulltext.text_hits(session, query, max(BROAD, depth), visible_to(caller)) if relevance else 0
            tiered = hits >= BROAD
            if hits < depth or sort == "-relevance":
                depth = None
            # entries carry no description: it is most of a row's bytes, and only `show` needs it
            stmt = index.search_query(session, caller, query, filters, sort, limit, offset, depth, tiered)
            rows = list(session.scalars(stmt.options(defer(ModelRow.description))))
            if depth and len(rows) < limit:
                stmt = index.search_query(session, caller, query, filters, sort, limit, offset, tiered=tiered)
                rows = list(session.scalars(stmt.options(defer(ModelRow.description))))
            # what a card shows beyond the row (metrics, base model, trainable): one query per page
            documents = dict(session.execute(
                sa.select(VersionRow.name, VersionRow.document)
                .where(sa.tuple_(VersionRow.name, VersionRow.version).in_([(r.name, r.latest) for r in rows]))
            ).all()) if rows else {}
            return [{**self._summary(row), **card_fields(json.loads(documents.get(row.name) or "{}"))}
                    for row in rows]

    def facets(self, caller):
        """``{facet: {value: count}}`` of the models ``caller`` may see (:func:`index.facet_counts`):
        the values a search's filters can take."""
        with self.Session() as session:
            return index.facet_counts(session, _caller(caller))

    def show(self, caller, name, version=None):
        """One version (default: the latest) with its metadata, files and the list of versions."""
        caller = _caller(caller)
        with self.Session() as session:
            row = self._visible_model(session, caller, name)
            ver = session.get(VersionRow, (name, version or row.latest)) if isinstance(version or row.latest, str) else None
            if ver is None:
                raise NotFound(f"model {name!r} has no version {version!r}")
            entry = self._summary(row, self._groups(session, name))
            document = json.loads(ver.document)
            entry.update(card_fields(document))
            entry.update(
                version=ver.version,
                version_deprecated=ver.deprecated,
                published_by=ver.published_by,
                published=ver.created.isoformat() + "Z",
                metadata=document,
                files=json.loads(ver.files),
                versions=self._version_list(session, name),
            )
            entry["description"] = row.description if ver.version == row.latest else entry["metadata"].get("description", "")
            return entry

    def _version_list(self, session, name):
        rows = session.scalars(sa.select(VersionRow).where(VersionRow.name == name))
        out = [
            {"version": v.version, "created": v.created.isoformat() + "Z", "deprecated": v.deprecated, "published_by": v.published_by}
            for v in rows
        ]
        return sorted(out, key=lambda v: _version_key(v["version"]), reverse=True)

    def versions(self, caller, name):
        caller = _caller(caller)
        with self.Session() as session:
            self._visible_model(session, caller, name)
            return self._version_list(session, name)

    def iter_file(self, caller, name, version, filename, verify="blake3"):
        """``(info, chunks)`` of one artifact file; the chunks check its digest as they go."""
        entry = self.show(caller, name, version)
        info = entry["files"].get(filename)
        if info is None:
            raise NotFound(f"{name}:{entry['version']} has no file {filename!r}")
        return info, self.store.iter_chunks(info["sha256"], blake3_digest=info.get("blake3"), verify=verify)

    def pull(self, caller, name, version, dest, overwrite=False, verify="blake3"):
        """Copy a version's files and ``metadata.json`` into folder ``dest``; returns the entry.

        Every file is checked (a tampered store raises ``IntegrityError`` and leaves no file):
        against the BLAKE3 digest recorded at publish (``verify="blake3"``, the default; entries
        published before it have none and fall back to sha256), or its full sha256 name
        (``verify="sha256"``). An existing different file in ``dest`` is an error unless ``overwrite``.
        """
        entry = self.show(caller, name, version)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        clashes = [
            f for f, info in entry["files"].items()
            if (dest / f).exists() and not overwrite and file_sha256(dest / f) != info["sha256"]
        ]
        if clashes:
            raise FileExistsError(f"{dest}: would overwrite {', '.join(clashes)} (use overwrite)")
        for filename, info in entry["files"].items():
            if metadata.check_file_names([filename]):  # never trust stored names with paths
                raise ValueError(f"refusing file name {filename!r}")
            self.store.copy_to(info["sha256"], dest / filename, info.get("blake3"), verify)
        (dest / "metadata.json").write_text(json.dumps(entry["metadata"], indent=2))
        return entry

    # -- writing -------------------------------------------------------------------------------

    @staticmethod
    def check(document, files):
        """Every problem with publishing ``document`` with ``files`` ({name: local path})."""
        found = metadata.errors(document)
        found += metadata.check_file_names(files)
        if "model.keras" not in files:
            found.append("files: model.keras is required")
        elif not found:
            found += modelfile.problems(files["model.keras"])
        section = document.get(metadata.SECTION) if isinstance(document, dict) else None
        notebook = ((section or {}).get("training") or {}).get("notebook") if isinstance(section, dict) else None
        if notebook and notebook not in files:
            found.append(f"deepvre.training.notebook: {notebook!r} is not among the files")
        return found

    def publish(self, metadata_doc, files, owner, visibility=None, groups=None):
        """Publish one immutable version; returns its entry (as :meth:`show`).

        ``files``: {artifact file name: local path}. ``owner``: a user name or :class:`Caller`.
        ``visibility``/``groups`` override the document's. Raises ``metadata.MetadataError`` (with
        every problem), :class:`Forbidden`, :class:`NotFound`, :class:`Conflict` or
        :class:`UploadTooLarge`. Nothing is visible until the one database transaction commits,
        after every blob is on disk under its checksum name (a kill before it leaves the version
        invisible; see :meth:`recover`).
        """
        caller = _caller(owner)
        document = copy.deepcopy(metadata_doc)
        if isinstance(document, dict) and isinstance(document.get(metadata.SECTION), dict):
            if visibility:
                document[metadata.SECTION]["visibility"] = visibility
            if groups is not None:
                document[metadata.SECTION]["groups"] = list(groups)
        files = {k: str(v) for k, v in dict(files).items()}
        problems = self.check(document, files)
        if problems:
            raise metadata.MetadataError(problems)
        missing = [f for f, p in files.items() if not os.path.isfile(p)]
        if missing:
            raise metadata.MetadataError([f"files.{f}: no such file {files[f]}" for f in missing])
        total = sum(os.path.getsize(p) for p in files.values())
        if total > self.upload_limit:
            raise UploadTooLarge(f"artifact is {total} bytes, over the limit of {self.upload_limit}")
        section = document[metadata.SECTION]
        name, version = section["name"], section["version"]
        self._check_can_publish(caller, name, version)
        stored = {}
        for filename, path in sorted(files.items()):
            blob = self.store.put_file(path)
            stored[filename] = {"sha256": blob.sha256, "size": blob.size, "blake3": blob.blake3}
        self._commit_version(caller, document, stored)
        return self.show(caller, name, version)

    def _check_reserved(self, caller, name):
        if caller.name != SYSTEM_ACCOUNT and reserved(name, self.reserved_names):
            raise Forbidden(f"the name {name!r} is reserved for the hub's base models: only the system account "
                            f"{SYSTEM_ACCOUNT!r} publishes it (the hub seeds it); choose another name")

    def _check_can_publish(self, caller, name, version):
        self._check_reserved(caller, name)
        with self.Session() as session:
            row = session.get(ModelRow, name)
            if row is None:
                return
            self._check_publisher(caller, row)
            if session.get(VersionRow, (name, version)) is not None:
                raise Conflict(f"{name}:{version} already exists; versions are immutable")

    @staticmethod
    def _check_publisher(caller, row):
        """A new version of an existing model: its owner or an admin. Anyone else hears only that
        the name is taken, the same whether they may see the model or not (no owner, no 404)."""
        if not caller.admin and row.owner != caller.name:
            raise Forbidden(f"the name {row.name!r} is taken: only its owner or an admin may publish versions of it")

    def _check_owner(self, session, caller, row):
        self._visible_model(session, caller, row.name)  # NotFound for the invisible
        if not caller.admin and row.owner != caller.name:
            raise Forbidden(f"model {row.name!r} belongs to {row.owner}; only its owner or an admin may change it")

    def _commit_version(self, caller, document, stored):
        section = document[metadata.SECTION]
        name, version = section["name"], section["version"]
        for attempt in range(50):
            try:
                with self.Session.begin() as session:
                    row = session.get(ModelRow, name)
                    self._check_reserved(caller, name)
                    if row is None:
                        row = ModelRow(name=name, owner=caller.name, latest=version, created=now())
                        session.add(row)
                        self._set_visibility(session, row, section["visibility"], section.get("groups", []))
                    else:
                        self._check_publisher(caller, row)
                    session.add(
                        VersionRow(
                            name=name,
                            version=version,
                            published_by=caller.name,
                            created=now(),
                            document=json.dumps(document),
                            files=json.dumps(stored),
                        )
                    )
                    session.flush()
                    if _version_key(version) >= _version_key(row.latest) or row.latest == version:
                        self._fill(row, document, version)
                    row.updated = now()
                    fulltext.index_row(session, row)
                return
            except sa.exc.IntegrityError:
                with self.Session() as session:
                    if session.get(VersionRow, (name, version)) is not None:
                        raise Conflict(f"{name}:{version} already exists; versions are immutable") from None
            except sa.exc.OperationalError as err:  # SQLite: another writer holds the lock
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
            time.sleep(0.02 * (attempt + 1))
        raise Conflict(f"{name}:{version}: could not publish, the index stayed busy")

    @staticmethod
    def _fill(row, document, version):
        section = document[metadata.SECTION]
        row.latest = version
        row.title = document.get("title", "")
        row.summary = document.get("summary", "")
        row.description = document.get("description", "")
        row.tags = " ".join(document.get("tags", []))
        row.use_case = section.get("use_case", "")
        row.tasks = json.dumps(document.get("tasks", []))
        row.libraries = json.dumps(document.get("libraries", []))
        row.categories = json.dumps(document.get("categories", []))

    @staticmethod
    def _set_visibility(session, row, visibility, groups):
        if visibility not in ("public", "group", "private"):
            raise metadata.MetadataError([f"visibility: {visibility!r} is not one of public, group, private"])
        if visibility == "group" and not groups:
            raise metadata.MetadataError(["groups: a `group` model needs at least one group"])
        row.visibility = visibility
        session.execute(sa.delete(ModelGroup).where(ModelGroup.name == row.name))
        session.flush()
        for group in sorted(set(groups or [])) if visibility == "group" else []:
            session.add(ModelGroup(name=row.name, group=str(group)))

    def set_visibility(self, caller, name, visibility, groups=None):
        """Change who sees a model (owner or admin)."""
        caller = _caller(caller)
        with self.Session.begin() as session:
            row = self._visible_model(session, caller, name)
            self._check_owner(session, caller, row)
            self._set_visibility(session, row, visibility, groups or [])
            row.updated = now()
        return self.show(caller, name)

    def _referenced(self):
        """{sha256: (file info, ["name:version/file", ...])} of every blob a version names."""
        blobs = {}
        with self.Session() as session:
            for ver in session.scalars(sa.select(VersionRow)):
                for filename, info in json.loads(ver.files).items():
                    blobs.setdefault(info["sha256"], (info, []))[1].append(f"{ver.name}:{ver.version}/{filename}")
        return blobs

    def recover(self):
        """Remove the temporary files of publishes that were killed (the service calls this at
        start); returns their paths. Their versions were never visible: a version's index row is
        committed only once all its blobs are in place."""
        removed = self.store.recover()
        for path in removed:
            log.warning("removed %s, left by an interrupted publish", path)
        return removed

    def leftovers(self):
        """What interrupted publishes left, none of it visible: ``{"temporary": [paths],
        "unreferenced": [sha256]}`` (blobs stored before a publish was killed; a republish of the
        same files uses them)."""
        named = self._referenced()
        return {"temporary": self.store.leftovers(), "unreferenced": [d for d in self.store.digests() if d not in named]}

    def fsck(self):
        """Every problem with the stored artifacts: each blob any version names is re-hashed with
        sha256 (its name) and checked against its size and recorded BLAKE3 digest. An admin's check
        of the whole store (``deepvre market fsck``); returns a list of readable lines."""
        blobs = self._referenced()
        problems = []
        for digest, (info, users) in sorted(blobs.items()):
            where = ", ".join(users)
            try:
                size = sum(len(c) for c in self.store.iter_chunks(digest, verify="sha256"))
                if info.get("blake3"):
                    for _ in self.store.iter_chunks(digest, blake3_digest=info["blake3"], verify="blake3"):
                        pass
            except IntegrityError as err:
                problems.append(f"{where}: {err}")
                continue
            if size != info["size"]:
                problems.append(f"{where}: artifact {digest} has {size} bytes, the index says {info['size']}")
        return problems

    def deprecate(self, caller, name, version=None, deprecated=True):
        """Mark a model (or one version) deprecated, or undo it (owner or admin). ``deprecated``
        is a bool: anything else (e.g. the string ``"false"``) is a ValueError, never truthy."""
        caller = _caller(caller)
        if not isinstance(deprecated, bool):
            raise ValueError(f"deprecated: {deprecated!r} is not true or false")
        with self.Session.begin() as session:
            row = self._visible_model(session, caller, name)
            self._check_owner(session, caller, row)
            if version is None:
                row.deprecated = bool(deprecated)
            else:
                ver = session.get(VersionRow, (name, version))
                if ver is None:
                    raise NotFound(f"model {name!r} has no version {version!r}")
                ver.deprecated = bool(deprecated)
        return self.show(caller, name, version)
