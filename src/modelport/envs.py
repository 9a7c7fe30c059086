"""The one registry of environment variables modelport reads.

Every variable is read here, lazily, so tests can set them per process and `modelport env`
can list them with their meaning. Nothing else in the package calls ``os.environ`` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    help: str

    def get(self) -> str:
        return os.environ.get(self.name, self.default)


DATA_DIR = EnvVar(
    "MODELPORT_DATA_DIR",
    str(Path.home() / ".cache" / "modelport"),
    "Where modelport keeps demo models, the weight cache and state.",
)
LOG_LEVEL = EnvVar("MODELPORT_LOG_LEVEL", "info", "Log level: debug, info, warning, error.")
TORCH_THREADS = EnvVar(
    "MODELPORT_TORCH_THREADS", "0", "Intra-op threads for torch on CPU; 0 keeps torch's default (all cores)."
)

ONEDNN_CACHE = EnvVar(
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY",
    "32",
    "oneDNN kernels cached per shape (torch CPU matmuls). oneDNN's default of 1024 lets RSS grow by "
    "~100 MiB as ragged batches bring new shapes; 32 keeps it flat at no measured speed cost.",
)

URL = EnvVar(
    "MODELPORT_URL",
    "http://127.0.0.1:8000",
    "Where the CLI and SDK find the control plane (`modelport up` listens here by default).",
)
TOKEN = EnvVar(
    "MODELPORT_TOKEN",
    "",
    "Admin token for the control plane API; default: the token file `modelport up` wrote.",
)
DATABASE_URL = EnvVar(
    "MODELPORT_DATABASE_URL",
    "",
    "SQLAlchemy URL of the control plane store (postgresql+psycopg://...); default: SQLite in the data dir.",
)

REPLICA_ID = EnvVar(
    "MODELPORT_REPLICA_ID",
    "",
    "Set by the control plane in each replica's environment, so a restarted control plane can find a "
    "replica whose launch it had not recorded yet.",
)

REPLICA_TOKEN = EnvVar(
    "MODELPORT_REPLICA_TOKEN",
    "",
    "Set by the control plane in each replica's environment: the token the gateway sends as "
    "`Authorization: Bearer`; `modelport serve` then refuses other callers with 401 (all routes but "
    "/health and /metrics), and a custom server may check it. Unset: no check.",
)

REPLICA_PRELOAD = EnvVar(
    "MODELPORT_REPLICA_PRELOAD",
    "1",
    "1: the control plane keeps one idle Python with torch and transformers imported (~400 MiB) and "
    "forks builtin replicas from it, so a cold start skips ~6 s of imports; 0: start each replica "
    "as a new Python.",
)

UNHEALTHY_PROBES = EnvVar(
    "MODELPORT_UNHEALTHY_PROBES",
    "3",
    "Health probes in a row (one per 0.5 s control-loop tick, each timing out after 2 s) a replica "
    "that was ready may fail before it is stopped and restarted; it leaves routing at the first.",
)

REGION = EnvVar(
    "MODELPORT_REGION",
    "local",
    "The region label of the place this installation runs replicas (e.g. eu-west-1); an endpoint's "
    "provider.region must match it.",
)

ALLOWED_HOSTS = EnvVar(
    "MODELPORT_ALLOWED_HOSTS",
    "",
    "Comma-separated hosts (host or host:port) model weights may be fetched from, e.g. "
    "huggingface.co,minio.internal:9000; empty: any. Other sources are refused.",
)

ALLOW_CUSTOM_COMMANDS = EnvVar(
    "MODELPORT_ALLOW_CUSTOM_COMMANDS",
    "0",
    "1: `modelport up` accepts endpoints with image.custom.command (a command run on this host, "
    "written by the admin token or a key with the host scope); 0: refused for everyone. "
    "Same as `up --allow-custom-commands`.",
)

USAGE_RETENTION_DAYS = EnvVar(
    "MODELPORT_USAGE_RETENTION_DAYS",
    "400",
    "Days usage records (and the per-endpoint analytics computed from them) are kept; 0: forever.",
)
USAGE_QUEUE_MAX = EnvVar(
    "MODELPORT_USAGE_QUEUE_MAX",
    "100000",
    "Usage records (each with its audit record) the gateway holds while the store cannot take them; "
    "past it the oldest are dropped, counted in modelport_usage_records_dropped_total and logged.",
)

AUDIT_RETENTION_DAYS = EnvVar(
    "MODELPORT_AUDIT_RETENTION_DAYS",
    "0",
    "Days audit records are kept (the rest still verifies); 0: forever.",
)

MODEL_CACHE = EnvVar(
    "MODELPORT_MODEL_CACHE",
    "",
    "Where pulled weights are kept (content-addressed, shared by every replica on the machine); "
    "default: <data dir>/models.",
)
S3_ENDPOINT_URL = EnvVar(
    "MODELPORT_S3_ENDPOINT_URL",
    "",
    "Endpoint URL of an S3-compatible store for s3:// model sources (MinIO, Ceph, a regional cloud); "
    "default: boto3's own (AWS_ENDPOINT_URL, else AWS).",
)

ENGINES_DIR = EnvVar(
    "MODELPORT_ENGINES_DIR",
    "",
    "Where `modelport engines install` puts external engines (vLLM, llama.cpp), one virtual "
    "environment per engine and version; default: <data dir>/engines.",
)

HARDWARE_PRICES = EnvVar(
    "MODELPORT_HARDWARE_PRICES",
    "",
    "JSON file of hardware prices for `modelport plan`, USD per GPU-hour by instance type, e.g. "
    '{"nvidia-h100": 4.5, "local": 0}; default: the catalog\'s list-price-ish figures.',
)

UPSTREAM_FIRST_BYTE_TIMEOUT = EnvVar(
    "MODELPORT_UPSTREAM_FIRST_BYTE_TIMEOUT",
    "300",
    "Seconds the gateway waits for a replica to begin answering a request (for a non-streamed "
    "request: the whole generation); past it the client gets 504 and the engine's work is aborted.",
)
UPSTREAM_IDLE_TIMEOUT = EnvVar(
    "MODELPORT_UPSTREAM_IDLE_TIMEOUT",
    "120",
    "Seconds a replica may stay silent while its answer is relayed; past it the answer ends with an "
    "error and the replica leaves rotation until the control loop has probed it.",
)
MAX_HELD = EnvVar(
    "MODELPORT_MAX_HELD",
    "1000",
    "Requests one endpoint may hold while it has no ready replica (starting, scaled to zero); more "
    "are answered 429 at once.",
)

MAX_IMAGE_BODY = EnvVar(
    "MODELPORT_MAX_IMAGE_BODY",
    str(20 * 1024 * 1024),
    "Largest image/* request body (bytes) the gateway takes on a task route (`/`, `/predict`); "
    "past it: 413. JSON and text bodies keep the control plane's body limit.",
)
MAX_AUDIO_BODY = EnvVar(
    "MODELPORT_MAX_AUDIO_BODY",
    str(25 * 1024 * 1024),
    "Largest audio/* request body (bytes) the gateway takes on a task or OpenAI audio route; past it: 413.",
)
MAX_MULTIPART_BODY = EnvVar(
    "MODELPORT_MAX_MULTIPART_BODY",
    str(25 * 1024 * 1024),
    "Largest multipart/form-data request body (bytes, OpenAI's audio uploads) the gateway takes; "
    "past it: 413.",
)
MAX_BINARY_BODY = EnvVar(
    "MODELPORT_MAX_BINARY_BODY",
    str(25 * 1024 * 1024),
    "Largest application/octet-stream request body (bytes) the gateway takes on a task route; past it: 413.",
)

CHAT_TEMPLATE_TIMEOUT_S = EnvVar(
    "MODELPORT_CHAT_TEMPLATE_TIMEOUT_S",
    "5",
    "Seconds the engine server gives the model's chat template to render one request's messages "
    "(off the event loop); past it the request is refused with 400.",
)

TEST_FAIL_ENGINE_AFTER_STEPS = EnvVar(
    "MODELPORT_TEST_FAIL_ENGINE_AFTER_STEPS",
    "0",
    "TEST ONLY (fault injection): the builtin engine's loop raises when it is about to run its "
    "N-th step after the replica became ready, as a crashed engine would; 0: off. Never set it "
    "in production.",
)

ALL: tuple[EnvVar, ...] = (
    DATA_DIR,
    LOG_LEVEL,
    ALLOW_CUSTOM_COMMANDS,
    TORCH_THREADS,
    ONEDNN_CACHE,
    URL,
    TOKEN,
    DATABASE_URL,
    REPLICA_ID,
    REPLICA_TOKEN,
    REPLICA_PRELOAD,
    UNHEALTHY_PROBES,
    REGION,
    ALLOWED_HOSTS,
    USAGE_RETENTION_DAYS,
    USAGE_QUEUE_MAX,
    AUDIT_RETENTION_DAYS,
    HARDWARE_PRICES,
    ENGINES_DIR,
    MODEL_CACHE,
    S3_ENDPOINT_URL,
    UPSTREAM_FIRST_BYTE_TIMEOUT,
    UPSTREAM_IDLE_TIMEOUT,
    MAX_HELD,
    MAX_IMAGE_BODY,
    MAX_AUDIO_BODY,
    MAX_MULTIPART_BODY,
    MAX_BINARY_BODY,
)


# what tells a replica process apart: in its environment, or in the process title of one forked
# from the preloaded Python (runtime/preload_server.py)
IDENTITY_VARS = (REPLICA_ID, DATA_DIR)


def apply_process_defaults() -> None:
    """Set library variables that must be in place before torch starts (called by `serve`)."""
    os.environ.setdefault(ONEDNN_CACHE.name, ONEDNN_CACHE.default)
    # huggingface_hub otherwise adds usage details to its user agent and, to find them, fetches a
    # registry from the Hub once a day: modelport makes no calls it was not asked to make
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def data_dir() -> Path:
    return Path(DATA_DIR.get()).expanduser()


def model_cache_dir() -> Path:
    return Path(MODEL_CACHE.get()).expanduser() if MODEL_CACHE.get() else data_dir() / "models"


def engines_dir() -> Path:
    return Path(ENGINES_DIR.get()).expanduser() if ENGINES_DIR.get() else data_dir() / "engines"


def replica_preload() -> bool:
    return REPLICA_PRELOAD.get().strip().lower() not in ("0", "false", "no", "off")


def unhealthy_probes() -> int:
    return max(int(UNHEALTHY_PROBES.get() or UNHEALTHY_PROBES.default), 1)


def usage_retention_days() -> float:
    return float(USAGE_RETENTION_DAYS.get() or "0")


def usage_queue_max() -> int:
    """At least 1: a typo must not turn usage recording off."""
    try:
        return max(1, int(USAGE_QUEUE_MAX.get()))
    except ValueError:
        return int(USAGE_QUEUE_MAX.default)


def audit_retention_days() -> float:
    return float(AUDIT_RETENTION_DAYS.get() or "0")


def positive_float(var: EnvVar) -> float:
    """A finite number > 0, else the variable's default (a typo must not disable a deadline)."""
    import math

    try:
        value = float(var.get())
    except ValueError:
        value = float(var.default)
    return value if math.isfinite(value) and value > 0 else float(var.default)


def byte_count(var: EnvVar) -> int:
    """A whole number of bytes > 0, else the variable's default (a typo must not lift a limit)."""
    try:
        value = int(var.get())
    except ValueError:
        value = int(var.default)
    return value if value > 0 else int(var.default)


def chat_template_timeout_s() -> float:
    return float(CHAT_TEMPLATE_TIMEOUT_S.get() or "5")


def test_fail_engine_after_steps() -> int:
    return int(TEST_FAIL_ENGINE_AFTER_STEPS.get() or "0")


def torch_threads() -> int:
    return int(TORCH_THREADS.get() or "0")


def admin_token_path() -> Path:
    """The admin token file `modelport up` creates on first start (owner-only permissions)."""
    return data_dir() / "admin-token"


def replica_secret_path() -> Path:
    """The installation secret replicas' tokens are derived from (runtime/replica_token.py)."""
    return data_dir() / "replica-secret"


def database_url() -> str:
    return DATABASE_URL.get() or f"sqlite:///{data_dir() / 'modelport.db'}"


# every replica runs with these, whatever its endpoint sets: engines' usage reporting and
# libraries' telemetry off (vLLM, Hugging Face libraries, anything honouring DO_NOT_TRACK)
TELEMETRY_OFF = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
}


def process_environment() -> dict[str, str]:
    """The environment children inherit (replicas get it plus their endpoint's env and secrets,
    then TELEMETRY_OFF again)."""
    return {**os.environ, **TELEMETRY_OFF}
