"""Usage reports: requests, tokens, units (audio seconds, images, documents, pixels that task
routes reported), replica-seconds and cost per endpoint or per key in a time window
(replica-seconds billed per second from the replicas' own process lifetimes), and one
endpoint's time series. Served by control/api/usage_routes.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from modelport.control.services.errors import ControlError
from modelport.ledger.billing import cost, cost_per_million_tokens, replica_seconds
from modelport.ledger.series import series
from modelport.models.hardware import UnknownHardwareError, find_option
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
    totals["units"] = _sum_units(i.get("units") or {} for i in items)
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
        row = counted.get(key) or {"namespace": key[0], "endpoint": key[1], **dict.fromkeys(_COUNTS, 0),
                                   "units": {}}  # fmt: skip
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


def _sum_units(each: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Work that is not tokens (audio_seconds, images, documents, pixels), added up by unit."""
    total: dict[str, float] = {}
    for units in each:
        for name, amount in units.items():
            total[name] = total.get(name, 0.0) + amount
    return {name: round(amount, 6) for name, amount in sorted(total.items())}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def endpoint_series(
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
