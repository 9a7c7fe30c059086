"""Python SDK for the modelport control plane."""

from modelport.sdk.client import AsyncClient, AsyncEndpoint, Client, Endpoint
from modelport.sdk.errors import APIError, ConnectError, EndpointFailed, ModelportError, NotFound, WaitTimeout
from modelport.sdk.keys import ApiKey

__all__ = [
    "APIError",
    "ApiKey",
    "AsyncClient",
    "AsyncEndpoint",
    "Client",
    "ConnectError",
    "Endpoint",
    "EndpointFailed",
    "ModelportError",
    "NotFound",
    "WaitTimeout",
]
