"""What the gateway's body parsing costs per relayed event: the usage meter (with its count of
token events, which is what a stream cut short is charged), and the transcript an endpoint
that opted in to keeping texts adds.

    python benchmarks/relay_parsing.py [--tokens 128] [--repeats 200] [--json]

Replays one streamed chat answer as the builtin engine sends it (one SSE event per token, one
event per network read, then the usage chunk and [DONE]) through `Meter.feed`, through the
token-event count alone, and through `Transcript.feed`; reports the median microseconds per
event over `--repeats` replays.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

from modelport.gateway.metering import _TEXT, Meter
from modelport.gateway.transcript import Transcript


def stream(tokens: int) -> list[bytes]:
    events = []
    for i in range(tokens):
        choice = {"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [choice],
        }
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    usage = {
        "choices": [],
        "usage": {"prompt_tokens": 32, "completion_tokens": tokens, "total_tokens": tokens + 32},
    }
    return [*events, b"data: " + json.dumps(usage).encode() + b"\n\n", b"data: [DONE]\n\n"]


def per_event_us(events: list[bytes], replay: Callable[[list[bytes]], None], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        replay(events)
        samples.append((time.perf_counter() - start) / len(events) * 1e6)
    return statistics.median(samples)


def meter(events: list[bytes]) -> None:
    m = Meter(sse=True, strip_usage=True)
    for event in events:
        m.feed(event)
    m.finish()


def count_only(events: list[bytes]) -> None:
    for event in events:
        _TEXT.findall(event)


def transcript(events: list[bytes]) -> None:
    t = Transcript(b'{"messages":[{"role":"user","content":"hi"}],"stream":true}', 1)
    for event in events:
        t.feed(event, True)
    t.completion()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = stream(args.tokens)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "events": len(events),
        "meter_us_per_event": per_event_us(events, meter, args.repeats),
        "token_count_us_per_event": per_event_us(events, count_only, args.repeats),
        "transcript_us_per_event": per_event_us(events, transcript, args.repeats),
    }
    if args.json:
        print(json.dumps(result))
        return
    replays = f"median of {args.repeats} replays"
    print(f"{result['events']} events ({args.tokens} tokens), {replays}, {result['machine']}")
    for name in ("meter", "token_count", "transcript"):
        print(f"  {name:<12} {result[f'{name}_us_per_event']:6.2f} µs per event")


if __name__ == "__main__":
    main()
