"""Engine load read from Prometheus text, in modelport's and vLLM's names."""

from __future__ import annotations

from modelport.autoscale.engine_signals import EngineLoad, mean_kv_usage, parse_engine_metrics

MODELPORT = """# TYPE modelport:num_requests_running gauge
modelport:num_requests_running{model_name="chat"} 3.0
# TYPE modelport:num_requests_waiting gauge
modelport:num_requests_waiting{model_name="chat"} 2.0
# TYPE modelport:kv_cache_usage_perc gauge
modelport:kv_cache_usage_perc{model_name="chat"} 0.25
"""

VLLM = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 7.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
"""


def test_both_engines_metrics_are_understood() -> None:
    assert parse_engine_metrics(MODELPORT) == EngineLoad(running=3.0, waiting=2.0, kv_usage=0.25)
    assert parse_engine_metrics(VLLM) == EngineLoad(running=7.0, waiting=0.0, kv_usage=0.5)


def test_a_page_without_engine_metrics_gives_nothing() -> None:
    assert (
        parse_engine_metrics("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.0\n")
        is None
    )


def test_mean_kv_usage_skips_engines_that_do_not_report_it() -> None:
    loads = [EngineLoad(1, 0, 0.2), EngineLoad(1, 0, None), EngineLoad(1, 0, 0.6)]
    assert abs((mean_kv_usage(loads) or 0) - 0.4) < 1e-9
    assert mean_kv_usage([EngineLoad(1, 0, None)]) is None
