"""`GET /v2/usage`: requests, tokens, replica-seconds and cost per endpoint or per key, in a
time window; replica-seconds billed per second from the replicas' own process lifetimes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request

from modelport.control.service import ControlError
from modelport.models.hardware import UnknownHardwareError, default_prices, find_option
from modelport.observe.billing import cost, cost_per_million_tokens, replica_seconds
from modelport.observe.series import series
from modelport.store.repository import NotFound, Store

_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens")
MAX_POINTS = 10_000


def usage_report(
    store: Store, by: str, start: datetime | None, end: datetime | None, now: datetime,
    prices: Mapping[str, float],
) -> dict[str, Any]:  # fmt: skip
    if by == "key":
        names = {k.id: k.name for k in store.keys.list()}
        items = [{**row, "key_name": names.get(row["key_id"] or "", "")}
                 for row in store.usage.totals("key", start, end)]  # fmt: skip
    else:
        items = _by_endpoint(store, start, end, now, prices)
    totals: dict[str, Any] = {k: sum(int(i[k]) for i in items) for k in _COUNTS}
    if by == "endpoint":
        totals["replica_seconds"] = round(sum(i["replica_seconds"] for i in items), 3)
        totals["cost_usd"] = round(sum(i["cost_usd"] for i in items), 6)
    return {"by": by, "from": _iso(start), "to": _iso(end), "at": _iso(now), "items": items, "totals": totals}


def _by_endpoint(
    store: Store, start: datetime | None, end: datetime | None, now: datetime, prices: Mapping[str, float]
) -> list[dict[str, Any]]:
    counted = {(r["namespace"], r["endpoint"]): r for r in store.usage.totals("endpoint", start, end)}
    seconds = replica_seconds(store.runs.overlapping(start, end), start, end, now)
    items = []
    for key in sorted(set(counted) | set(seconds)):
        row = counted.get(key) or {"namespace": key[0], "endpoint": key[1], **dict.fromkeys(_COUNTS, 0)}
        spent, billed, hardware = 0.0, 0.0, []
        for name, secs in sorted(seconds.get(key, {}).items()):
            instance_type, _, instance_size = name.partition("/")
            try:
                price = find_option(instance_type, instance_size, prices).price_per_hour
            except UnknownHardwareError:
                price = 0.0  # hardware this catalog does not know: its seconds are shown, not priced
            spent += cost(secs, price)
            billed += secs
            hardware.append({"instance": name, "seconds": round(secs, 3), "price_per_hour": price})
        tokens = int(row["prompt_tokens"]) + int(row["completion_tokens"])
        per_million = cost_per_million_tokens(spent, tokens)
        items.append({
            **row,
            "replica_seconds": round(billed, 3),
            "hardware": hardware,
            "cost_usd": round(spent, 6),
            "cost_per_million_tokens": None if per_million is None else round(per_million, 6),
        })  # fmt: skip
    return items


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


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

    @router.get("/usage", summary="Requests, tokens, replica-seconds and cost per endpoint or key")
    async def usage(
        by: str = Query("endpoint", pattern="^(endpoint|key)$"),
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        begin, finish = _time(start, "from"), _time(end, "to")
        try:
            prices = default_prices()
        except ValueError as exc:
            raise ControlError(500, "configuration_error", str(exc)) from None
        return await to_thread.run_sync(usage_report, store, by, begin, finish, now(), prices)

    @router.get(
        "/endpoint/{namespace}/{name}/metrics",
        summary="Per-step requests/s, error rate, latency and TTFT p50/p95, output tokens/s, replicas",
        tags=["endpoints"],
    )
    async def endpoint_series(
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
        points = await to_thread.run_sync(_series, store, namespace, name, begin, finish, step, at)
        return {"namespace": namespace, "name": name, "from": begin.isoformat(), "to": finish.isoformat(),
                "step": step, "points": points}  # fmt: skip

    return router


def _series(
    store: Store, namespace: str, name: str, start: datetime, end: datetime, step: int, now: datetime
) -> list[dict[str, Any]]:
    try:
        store.get_endpoint(namespace, name)
    except NotFound:
        missing = f"no endpoint named {name!r} in namespace {namespace!r}"
        raise ControlError(404, "not_found", missing) from None
    requests = store.usage.points(namespace, name, start, end)
    runs = [r for r in store.runs.overlapping(start, end) if (r.namespace, r.endpoint) == (namespace, name)]
    return series(requests, runs, start, end, step, now)
