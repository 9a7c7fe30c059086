"""`GET /v2/usage` and `GET /v2/endpoint/{namespace}/{name}/metrics`: the wire side of the usage
service (query parameters, time parsing); the sums live in control/services/usage_service.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request

from modelport.control.services.errors import ControlError
from modelport.control.services.usage_service import MAX_POINTS, endpoint_series, usage_report
from modelport.models.hardware import default_prices
from modelport.store.repository import Store


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        message = f"{name} must be an ISO 8601 time, got {text!r}"
        raise ControlError(400, "bad_request", message, name) from None
    if moment.tzinfo is None:
        raise ControlError(400, "bad_request", f"{name} needs a time zone (e.g. ...Z), got {text!r}", name)
    return moment


def usage_router(
    store: Store, now: Callable[[], datetime], require_admin: Callable[[Request], None]
) -> APIRouter:
    router = APIRouter(prefix="/v2", dependencies=[Depends(require_admin)], tags=["usage"])

    @router.get(
        "/usage",
        summary="Requests, tokens, units (audio seconds, images, ...), replica-seconds and cost per "
        "endpoint or key",
    )
    async def usage(
        by: str = Query("endpoint", pattern="^(endpoint|key)$"),
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        begin, finish = _time(start, "from"), _time(end, "to")

        def report() -> dict[str, Any]:  # in a worker thread: the prices file, then the store
            try:
                prices = default_prices()
            except ValueError as exc:
                raise ControlError(500, "configuration_error", str(exc)) from None
            return usage_report(store, by, begin, finish, now(), prices)

        return await to_thread.run_sync(report)

    @router.get(
        "/endpoint/{namespace}/{name}/metrics",
        summary="Per-step requests/s, error rate, latency and TTFT p50/p95, output tokens/s, replicas",
        tags=["endpoints"],
    )
    async def endpoint_metrics(
        namespace: str,
        name: str,
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
        step: int = Query(60, ge=1, le=86400, description="seconds per point"),
    ) -> dict[str, Any]:
        at = now()
        finish = _time(end, "to") or at
        begin = _time(start, "from") or finish - timedelta(hours=1)
        if begin >= finish:
            raise ControlError(400, "bad_request", "from must be before to", "from")
        if (finish - begin).total_seconds() / step > MAX_POINTS:
            raise ControlError(400, "bad_request", f"at most {MAX_POINTS} points: use a larger step", "step")
        points = await to_thread.run_sync(endpoint_series, store, namespace, name, begin, finish, step, at)
        return {"namespace": namespace, "name": name, "from": begin.isoformat(), "to": finish.isoformat(),
                "step": step, "points": points}  # fmt: skip

    return router
