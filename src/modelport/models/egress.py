"""Where model sources make modelport connect, and the installation's list of allowed hosts.

Data residency: an installation may declare the only hosts weights may come from
(MODELPORT_ALLOWED_HOSTS); every remote a pull would open is checked against it first (in
`pull.remote_for`, which every fetch goes through), and the control plane refuses an endpoint
whose source is elsewhere before anything is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from modelport import envs
from modelport.models.sources import ModelSource

HUB_DEFAULT = "https://huggingface.co"
S3_DEFAULT_HOST = "s3.amazonaws.com"  # AWS, when no endpoint URL is set (boto3 picks a regional name)


def _host(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")


def source_host(source: ModelSource, env: Mapping[str, str]) -> str | None:
    """The host a pull of `source` connects to (None for a local path). `env`: the process's
    environment with the endpoint's secrets over it (they may name an S3 endpoint)."""
    if source.kind == "hub":
        return _host(env.get("HF_ENDPOINT") or HUB_DEFAULT)
    if source.kind == "s3":
        names = (envs.S3_ENDPOINT_URL.name, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        url = next((env[n] for n in names if env.get(n)), None)
        return _host(url) if url else S3_DEFAULT_HOST
    return None


def allowed_hosts(env: Mapping[str, str]) -> frozenset[str] | None:
    """The allowed hosts (`host` or `host:port`), or None where the installation sets no list."""
    raw = env.get(envs.ALLOWED_HOSTS.name, "")
    hosts = frozenset(h.strip().lower() for h in raw.split(",") if h.strip())
    return hosts or None


def egress_refusal(source: ModelSource, env: Mapping[str, str]) -> str | None:
    """Why fetching `source` is refused here (None: it is not)."""
    host = source_host(source, env)
    allowed = allowed_hosts(env)
    if host is None or allowed is None:
        return None
    bare = host.split(":")[0]
    if host.lower() in allowed or bare.lower() in allowed:
        return None
    return (
        f"{source.display()} would be fetched from {host}, which is not an allowed host "
        f"({envs.ALLOWED_HOSTS.name}={','.join(sorted(allowed))}); mirror it to an allowed host "
        "or ask the installation's operator"
    )
