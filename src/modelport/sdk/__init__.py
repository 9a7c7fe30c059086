"""Python SDK for the modelport control plane."""

from modelport.sdk.api_keys import ApiKey
from modelport.sdk.client import AsyncClient, AsyncEndpoint, Client, Endpoint
from modelport.sdk.errors import APIError, ConnectError, EndpointFailed, ModelportError, NotFound, WaitTimeout

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
