"""The store's tables, with explicit columns (JSON only for maps and lists)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
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
    Column("scale_to_zero_after_s", Float, nullable=True),  # modelport's finer scaleToZeroTimeout
    Column("stabilization_s", Float, nullable=True),  # scale-down stabilization window
    Column(
        "warm_standby", Integer, nullable=False, server_default="0"
    ),  # loaded replicas kept out of rotation
    Column("vendor", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("traffic", JSON, nullable=True),  # gateway settings: networks, concurrency, overflow, fallback
    Column("intent", String(16), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("good_generation", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("ready_replicas", Integer, nullable=False),
    Column("target_replicas", Integer, nullable=False),
    Column("desired_replicas", Integer, nullable=True),  # the autoscaler's count (None: the minimum)
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

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),  # public: the key's prefix is mp_<id>
    Column("name", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the secret; the secret is never kept
    Column("scopes", JSON, nullable=False),
    Column("endpoints", JSON, nullable=False),
    Column("requests_per_minute", Integer, nullable=True),
    Column("tokens_per_minute", Integer, nullable=True),
    Column("token_budget", BigInteger, nullable=True),
    Column("budget_period", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("rotated_to", String(16), nullable=True),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("key_id", String(16), nullable=True, index=True),
    Column("namespace", String(64), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("served_by", String(64), nullable=False),  # the endpoint that answered (differs on overflow)
    Column("policy", String(16), nullable=True),  # overflow | fallback when a traffic policy rerouted
    Column("replica_id", String(32), nullable=True),
    Column("path", String(256), nullable=False),
    Column("status", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("first_byte_ms", Float, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("client", String(64), nullable=True),  # the caller's address
    Column("model", String(512), nullable=True),  # the served model's repository ...
    Column("revision", String(128), nullable=True),  # ... and pinned revision
    # {unit: amount} a replica reported (audio_seconds, images, documents, pixels); NULL: none
    Column("units", JSON(none_as_null=True), nullable=True),
)

# request and completion texts of endpoints that opted in (traffic.recordText), until expires_at;
# the request's audit record holds `digest`, so a kept text is proven unchanged
request_texts = Table(
    "request_texts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("namespace", String(64), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("request", Text, nullable=False),  # the body as the client sent it
    Column("completion", Text, nullable=False),  # JSON list: each choice's text
    Column("digest", String(64), nullable=False),
)

scaling_events = Table(
    "scaling_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "endpoint_id", Integer, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("previous", Integer, nullable=False),
    Column("desired", Integer, nullable=False),
    Column("cause", String(16), nullable=False),  # autoscaler | request | user
    Column("reason", Text, nullable=False),
    Column("inputs", JSON, nullable=False),  # the signals the decision saw
)

# the audit trail: append-only, hash-chained (ledger/audit_chain.py); every field is the exact
# string that was hashed, so a database cannot change what verification reads
audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False, index=True),  # ISO 8601 UTC: sorts as time does
    Column("kind", String(16), nullable=False),  # admin | inference
    Column("actor", String(64), nullable=False),
    Column("action", String(128), nullable=False),
    Column("target", String(256), nullable=False),
    Column("source", String(64), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# one row once a retention purge ran: the last purged record, which the first kept one links to
audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("purged_at", String(32), nullable=False),
)

# one row per replica process, from its creation to its exit: what replica-seconds are billed
# from; kept after the replica and its endpoint are gone (names and hardware copied in)
replica_runs = Table(
    "replica_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("replica_id", String(32), nullable=False, index=True),
    Column("namespace", String(64), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("instance_type", String(128), nullable=False),
    Column("instance_size", String(64), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),  # the process's creation
    Column("ended_at", DateTime(timezone=True), nullable=True),  # None while it runs
)
