"""modelport: self-hosted inference endpoints for Hugging Face models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelport.version import __version__

__all__ = ["ApiKey", "AsyncClient", "Client", "__version__"]

if TYPE_CHECKING:
    from modelport.sdk import ApiKey, AsyncClient, Client


def __getattr__(name: str) -> Any:
    # the SDK loads on first use, so engine processes importing modelport do not pay for it
    if name in ("ApiKey", "Client", "AsyncClient"):
        from modelport import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
