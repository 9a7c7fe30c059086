"""`Client` and `AsyncClient`: drivers of the operations in core.py, plus endpoint handles.

Methods here only pick an operation and hand it to `_run`; everything else is in core.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Unpack

import httpx

from modelport import envs
from modelport.sdk import api_keys as keys
from modelport.sdk import core
from modelport.sdk.api_keys import ApiKey, KeyChanges
from modelport.sdk.endpoint import EndpointInfo
from modelport.sdk.errors import ConnectError

if TYPE_CHECKING:
    import openai
    from huggingface_hub import AsyncInferenceClient, InferenceClient


Progress = Callable[[dict[str, Any]], None]


def default_token() -> str | None:
    token = envs.TOKEN.get()
    if token:
        return token
    try:
        return envs.admin_token_path().read_text().strip() or None
    except OSError:
        return None


def _parse(response: httpx.Response) -> core.Reply:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return core.Reply(response.status_code, body)


def _unreachable(base_url: str, exc: Exception) -> ConnectError:
    return ConnectError(
        f"cannot reach the control plane at {base_url} ({type(exc).__name__}): run `modelport up` "
        f"or set MODELPORT_URL"
    )


class _Base:
    def __init__(self, base_url: str | None, token: str | None, namespace: str) -> None:
        self.base_url = (base_url or envs.URL.get()).rstrip("/")
        self.token = token if token is not None else default_token()
        self.namespace = namespace
        self.headers = {"authorization": f"Bearer {self.token}"} if self.token else {}

    def _transport_error(self, call: core.Call, exc: httpx.TransportError) -> core.Reply:
        if call.path.startswith("/"):
            raise _unreachable(self.base_url, exc) from exc
        return core.Reply(0, str(exc))  # an endpoint URL not answering yet: wait() keeps polling

    def _url(self, call: core.Call) -> str:
        return call.path if call.path.startswith(("http://", "https://")) else self.base_url + call.path


class Client(_Base):
    """Synchronous client of the modelport control plane."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        namespace: str = "default",
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, namespace)
        self.http = httpx.Client(headers=self.headers, timeout=timeout, transport=transport)

    def _run(self, op: core.Operation) -> Any:
        reply: core.Reply | None = None
        try:
            while True:
                step = op.send(reply)
                if isinstance(step, core.Sleep):
                    time.sleep(step.seconds)
                    reply = None
                    continue
                try:
                    reply = _parse(
                        self.http.request(step.method, self._url(step), json=step.json, params=step.params)
                    )
                except httpx.TransportError as exc:
                    reply = self._transport_error(step, exc)
        except StopIteration as done:
            return done.value

    # -- API keys (the secret is in `ApiKey.secret` only in what create_key and rotate_key return)
    def create_key(self, name: str, **options: Unpack[keys.KeyOptions]) -> ApiKey:
        """A new key (see `KeyOptions`); its `secret` is in this answer only."""
        return self._run(keys.create_key(name, options))  # type: ignore[no-any-return]

    def list_keys(self) -> list[ApiKey]:
        return self._run(keys.list_keys())  # type: ignore[no-any-return]

    def get_key(self, key_id: str) -> ApiKey:
        return self._run(keys.get_key(key_id))  # type: ignore[no-any-return]

    def update_key(self, key_id: str, **changes: Unpack[KeyChanges]) -> ApiKey:
        """Change only the fields given; None clears `expires_at` or a limit."""
        return self._run(keys.update_key(key_id, changes))  # type: ignore[no-any-return]

    def revoke_key(self, key_id: str) -> ApiKey:
        return self._run(keys.revoke_key(key_id))  # type: ignore[no-any-return]

    def rotate_key(self, key_id: str, overlap_seconds: int = 3600) -> ApiKey:
        """A new key with the same settings; the old one works `overlap_seconds` more."""
        return self._run(keys.rotate_key(key_id, overlap_seconds))  # type: ignore[no-any-return]

    def key_usage(self, key_id: str) -> dict[str, Any]:
        return self._run(keys.key_usage(key_id))  # type: ignore[no-any-return]

    def usage(self, by: str = "endpoint", start: str | None = None, end: str | None = None) -> dict[str, Any]:
        """Requests, tokens, replica-seconds and cost per endpoint (or requests and tokens per
        key) in [start, end) (ISO 8601 times with a zone; None: unbounded)."""
        return self._run(keys.usage_report(by, start, end))  # type: ignore[no-any-return]

    def create_endpoint(self, name: str, model: str, **options: Any) -> Endpoint:
        path = core.endpoint_path(self.namespace)
        return Endpoint(
            self, self._run(core.request("POST", path, core.create_payload(name, model, **options)))
        )

    def get_endpoint(self, name: str) -> Endpoint:
        return Endpoint(self, self._run(core.request("GET", core.endpoint_path(self.namespace, name))))

    def list_endpoints(self) -> list[Endpoint]:
        body = self._run(core.request("GET", core.endpoint_path(self.namespace)))
        return [Endpoint(self, raw) for raw in body["items"]]

    def list_hardware(self) -> list[dict[str, Any]]:
        return list(self._run(core.request("GET", f"/v2/provider/{self.namespace}"))["items"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """Asynchronous client of the modelport control plane (same methods, awaitable)."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        namespace: str = "default",
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, namespace)
        self.http = httpx.AsyncClient(headers=self.headers, timeout=timeout, transport=transport)

    async def _run(self, op: core.Operation) -> Any:
        reply: core.Reply | None = None
        try:
            while True:
                step = op.send(reply)
                if isinstance(step, core.Sleep):
                    await asyncio.sleep(step.seconds)
                    reply = None
                    continue
                try:
                    response = await self.http.request(
                        step.method, self._url(step), json=step.json, params=step.params
                    )
                    reply = _parse(response)
                except httpx.TransportError as exc:
                    reply = self._transport_error(step, exc)
        except StopIteration as done:
            return done.value

    # -- API keys (the secret is in `ApiKey.secret` only in what create_key and rotate_key return)
    async def create_key(self, name: str, **options: Unpack[keys.KeyOptions]) -> ApiKey:
        """A new key (see `KeyOptions`); its `secret` is in this answer only."""
        return await self._run(keys.create_key(name, options))  # type: ignore[no-any-return]

    async def list_keys(self) -> list[ApiKey]:
        return await self._run(keys.list_keys())  # type: ignore[no-any-return]

    async def get_key(self, key_id: str) -> ApiKey:
        return await self._run(keys.get_key(key_id))  # type: ignore[no-any-return]

    async def update_key(self, key_id: str, **changes: Unpack[KeyChanges]) -> ApiKey:
        """Change only the fields given; None clears `expires_at` or a limit."""
        return await self._run(keys.update_key(key_id, changes))  # type: ignore[no-any-return]

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._run(keys.revoke_key(key_id))  # type: ignore[no-any-return]

    async def rotate_key(self, key_id: str, overlap_seconds: int = 3600) -> ApiKey:
        """A new key with the same settings; the old one works `overlap_seconds` more."""
        return await self._run(keys.rotate_key(key_id, overlap_seconds))  # type: ignore[no-any-return]

    async def key_usage(self, key_id: str) -> dict[str, Any]:
        return await self._run(keys.key_usage(key_id))  # type: ignore[no-any-return]

    async def create_endpoint(self, name: str, model: str, **options: Any) -> AsyncEndpoint:
        path = core.endpoint_path(self.namespace)
        raw = await self._run(core.request("POST", path, core.create_payload(name, model, **options)))
        return AsyncEndpoint(self, raw)

    async def get_endpoint(self, name: str) -> AsyncEndpoint:
        return AsyncEndpoint(
            self, await self._run(core.request("GET", core.endpoint_path(self.namespace, name)))
        )

    async def list_endpoints(self) -> list[AsyncEndpoint]:
        body = await self._run(core.request("GET", core.endpoint_path(self.namespace)))
        return [AsyncEndpoint(self, raw) for raw in body["items"]]

    async def list_hardware(self) -> list[dict[str, Any]]:
        return list((await self._run(core.request("GET", f"/v2/provider/{self.namespace}")))["items"])

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Handle(EndpointInfo):
    def _op(self, method: str, action: str | None = None, json: Any = None) -> core.Operation:
        return core.request(method, core.endpoint_path(self.namespace, self.name, action), json)

    def _inference_url(self) -> str:
        if not self.url:
            raise RuntimeError(f"endpoint {self.name} has no URL yet")
        return self.url


class Endpoint(_Handle):
    def __init__(self, client: Client, raw: dict[str, Any]) -> None:
        self.client = client
        self.namespace = client.namespace
        self._load(raw)

    def _apply(self, op: core.Operation) -> Endpoint:
        self._load(self.client._run(op))
        return self

    def fetch(self) -> Endpoint:
        return self._apply(self._op("GET"))

    def wait(
        self, timeout: float = 600, poll_interval: float = 1.0, progress: Progress | None = None
    ) -> Endpoint:
        return self._apply(
            core.wait_for_ready(self.namespace, self.name, timeout, poll_interval, time.monotonic, progress)
        )

    def pause(self) -> Endpoint:
        return self._apply(self._op("POST", "pause"))

    def resume(self) -> Endpoint:
        return self._apply(self._op("POST", "resume"))

    def scale_to_zero(self) -> Endpoint:
        return self._apply(self._op("POST", "scale-to-zero"))

    def update(self, **changes: Any) -> Endpoint:
        return self._apply(self._op("PUT", json=core.update_payload(**changes)))

    def delete(self) -> None:
        self.client._run(self._op("DELETE"))

    def logs(self, tail: int = 200) -> list[dict[str, Any]]:
        path = core.endpoint_path(self.namespace, self.name, "logs")
        return list(self.client._run(core.request("GET", path, params={"tail": tail}))["replicas"])

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        """Scaling decisions (autoscaler, wake-ups, user actions), oldest first."""
        path = core.endpoint_path(self.namespace, self.name, "events")
        return list(self.client._run(core.request("GET", path, params={"limit": limit}))["items"])

    def metrics(self, start: str | None = None, end: str | None = None, step: int = 60) -> dict[str, Any]:
        """Per-step requests/s, error rate, latency and TTFT p50/p95, output tokens/s and replicas
        in [start, end) (ISO 8601 with a zone; default: the last hour)."""
        path = core.endpoint_path(self.namespace, self.name, "metrics")
        return dict(self.client._run(core.request("GET", path, params=_window(start, end, step))))

    def openai(self) -> openai.OpenAI:
        import openai

        return openai.OpenAI(base_url=f"{self._inference_url()}/v1", api_key=self.client.token or "none")

    def inference_client(self) -> InferenceClient:
        from huggingface_hub import InferenceClient

        return InferenceClient(model=self._inference_url(), token=self.client.token)


class AsyncEndpoint(_Handle):
    def __init__(self, client: AsyncClient, raw: dict[str, Any]) -> None:
        self.client = client
        self.namespace = client.namespace
        self._load(raw)

    async def _apply(self, op: core.Operation) -> AsyncEndpoint:
        self._load(await self.client._run(op))
        return self

    async def fetch(self) -> AsyncEndpoint:
        return await self._apply(self._op("GET"))

    async def wait(
        self, timeout: float = 600, poll_interval: float = 1.0, progress: Progress | None = None
    ) -> AsyncEndpoint:
        return await self._apply(
            core.wait_for_ready(self.namespace, self.name, timeout, poll_interval, time.monotonic, progress)
        )

    async def pause(self) -> AsyncEndpoint:
        return await self._apply(self._op("POST", "pause"))

    async def resume(self) -> AsyncEndpoint:
        return await self._apply(self._op("POST", "resume"))

    async def scale_to_zero(self) -> AsyncEndpoint:
        return await self._apply(self._op("POST", "scale-to-zero"))

    async def update(self, **changes: Any) -> AsyncEndpoint:
        return await self._apply(self._op("PUT", json=core.update_payload(**changes)))

    async def delete(self) -> None:
        await self.client._run(self._op("DELETE"))

    async def logs(self, tail: int = 200) -> list[dict[str, Any]]:
        path = core.endpoint_path(self.namespace, self.name, "logs")
        return list((await self.client._run(core.request("GET", path, params={"tail": tail})))["replicas"])

    async def events(self, limit: int = 100) -> list[dict[str, Any]]:
        """Scaling decisions (autoscaler, wake-ups, user actions), oldest first."""
        path = core.endpoint_path(self.namespace, self.name, "events")
        return list((await self.client._run(core.request("GET", path, params={"limit": limit})))["items"])

    async def metrics(
        self, start: str | None = None, end: str | None = None, step: int = 60
    ) -> dict[str, Any]:
        path = core.endpoint_path(self.namespace, self.name, "metrics")
        return dict(await self.client._run(core.request("GET", path, params=_window(start, end, step))))

    def openai(self) -> openai.AsyncOpenAI:
        import openai

        return openai.AsyncOpenAI(base_url=f"{self._inference_url()}/v1", api_key=self.client.token or "none")

    def inference_client(self) -> AsyncInferenceClient:
        from huggingface_hub import AsyncInferenceClient

        return AsyncInferenceClient(model=self._inference_url(), token=self.client.token)


def _window(start: str | None, end: str | None, step: int) -> dict[str, Any]:
    return {k: v for k, v in {"from": start, "to": end, "step": step}.items() if v is not None}
