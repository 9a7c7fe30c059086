"""The store's tables, with explicit columns (JSON only for maps and lists)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("accelerator", String(16), nullable=False),
    Column("instance_type", String(128), nullable=False),
    Column("instance_size", String(64), nullable=False),
    Column("min_replica", Integer, nullable=False),
    Column("max_replica", Integer, nullable=False),
    Column("scale_to_zero_timeout", Integer, nullable=True),
    Column("scaling_measure", JSON, nullable=True),
    Column("vendor", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("intent", String(16), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("good_generation", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("ready_replicas", Integer, nullable=False),
    Column("target_replicas", Integer, nullable=False),
    Column("update_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("namespace", "name", name="uq_endpoints_namespace_name"),
)

model_revisions = Table(
    "model_revisions",
    metadata,
    Column("endpoint_id", Integer, ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("repository", Text, nullable=False),
    Column("revision", String(256), nullable=True),
    Column("task", String(64), nullable=True),
    Column("framework", String(32), nullable=False),
    Column("image_kind", String(32), nullable=False),
    Column("image_config", JSON, nullable=False),
    Column("env", JSON, nullable=False),
    Column("secrets", JSON, nullable=False),
    Column("args", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

replicas = Table(
    "replicas",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "endpoint_id", Integer, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("generation", Integer, nullable=False),
    Column("runtime", String(16), nullable=False),
    Column("handle", JSON, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("restarts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ready_at", DateTime(timezone=True), nullable=True),
    Column("exited_at", DateTime(timezone=True), nullable=True),
)
