"""The catalog's tables (SQLAlchemy): one row per model (name, owner, visibility, the latest
version's searchable fields), one per immutable version (its metadata and file checksums), a model's
groups, and the full-text queue of :mod:`.fulltext`. The primary key ``(name, version)`` is what
makes two concurrent publishes of the same version end with exactly one winner.
"""

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(16), index=True)
    deprecated: Mapped[bool] = mapped_column(sa.Boolean, default=False)  # in the listing indexes below
    latest: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.Text, default="")
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    tags: Mapped[str] = mapped_column(sa.Text, default="")  # space-joined, for search
    use_case: Mapped[str] = mapped_column(sa.String(64), index=True, default="")
    # JSON lists, matched as '%"value"%' so that filters are the same SQL on every database.
    tasks: Mapped[str] = mapped_column(sa.Text, default="[]")
    libraries: Mapped[str] = mapped_column(sa.Text, default="[]")
    categories: Mapped[str] = mapped_column(sa.Text, default="[]")
    created: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now, index=True)
    updated: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now, index=True)

    # Listings (no query) walk one of these in order and stop after a page; a bare index on
    # ``deprecated`` made SQLite read and sort every row instead (8 ms for a page of 10,000).
    __table_args__ = tuple(
        sa.Index(f"ix_models_listing_{key}", "deprecated", key, "name") for key in ("updated", "created", "title")
    ) + (sa.Index("ix_models_listing_name", "deprecated", "name"),)


class ModelGroup(Base):
    __tablename__ = "model_groups"
    name: Mapped[str] = mapped_column(sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True)
    group: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class VersionRow(Base):
    __tablename__ = "versions"
    name: Mapped[str] = mapped_column(sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    published_by: Mapped[str] = mapped_column(sa.String(255))
    created: Mapped[datetime.datetime] = mapped_column(sa.DateTime, default=now)
    deprecated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    document: Mapped[str] = mapped_column(sa.Text)  # the metadata, JSON
    files: Mapped[str] = mapped_column(sa.Text)  # {file name: {"sha256": ..., "size": ...}}, JSON


class PendingText(Base):
    """Models whose FTS5 row is out of date: published by a process whose SQLite lacks FTS5."""

    __tablename__ = "models_fts_pending"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


def visible_to(caller):
    """The WHERE clause for models ``caller`` may see (public, own, a shared group; admins all)."""
    if caller.admin:
        return sa.true()
    clauses = [ModelRow.visibility == "public", ModelRow.owner == caller.name]
    if caller.groups:
        clauses.append(
            sa.and_(
                ModelRow.visibility == "group",
                sa.exists().where(ModelGroup.name == ModelRow.name, ModelGroup.group.in_(list(caller.groups))),
            )
        )
    return sa.or_(*clauses)
