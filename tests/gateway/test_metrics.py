"""Request counters and the latency histogram are plain ints, exposed on scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from archipel.gateway._metrics import RequestStats


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    stats = RequestStats()
    for seconds in (0.001, 0.005, 0.02, 3.0, 60.0):
        stats.request("lab", "llama", 200, seconds)
    stats.request("lab", "llama", 502, 0.01)
    stats.attempt("llama/ovh", "ovhcloud", "failed")
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    assert 'archipel_gateway_requests_total{model="llama",status="200",tenant="lab"} 5.0' in text
    assert 'archipel_gateway_requests_total{model="llama",status="502",tenant="lab"} 1.0' in text
    assert (
        'archipel_gateway_upstream_attempts_total{outcome="failed",provider="ovhcloud",'
        'replica="llama/ovh"} 1.0' in text
    )
    # le is inclusive: 0.005 falls in the 0.005 bucket, as prometheus_client does it
    assert 'archipel_gateway_request_seconds_bucket{le="0.005",model="llama"} 2.0' in text
    assert 'archipel_gateway_request_seconds_bucket{le="0.01",model="llama"} 3.0' in text
    assert 'archipel_gateway_request_seconds_bucket{le="10.0",model="llama"} 5.0' in text
    assert 'archipel_gateway_request_seconds_bucket{le="+Inf",model="llama"} 6.0' in text
    assert 'archipel_gateway_request_seconds_count{model="llama"} 6.0' in text
