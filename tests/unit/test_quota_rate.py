"""Kafka's sampled Rate and throttle time (broker/quotas.py), on a simulated clock."""

from __future__ import annotations

from kafkito.broker.quotas import Rate, throttle_ms


def test_window_counts_at_least_the_full_samples_before_the_current() -> None:
    """A fresh rate divides by (samples - 1) whole windows, so a first burst is not enormous:
    5,000 bytes at t=0 over 11 samples of 1 s measure 500 B/s, within a 1,000 B/s quota;
    10,000 more measure 1,500 B/s: throttled for (1500 - 1000) / 1000 x 10 s = 5 s."""
    rate = Rate(samples=11, window_ms=1000)
    rate.record(5000, 0)
    assert rate.window_size_ms(0) == 10_000
    assert rate.measure(0) == 500
    assert throttle_ms(rate, 1000, 0) == 0
    rate.record(10_000, 0)
    assert throttle_ms(rate, 1000, 0) == 5000


def test_samples_expire_and_the_throttle_is_capped() -> None:
    rate = Rate(samples=2, window_ms=1000)
    rate.record(1_000_000, 0)
    assert throttle_ms(rate, 1000, 0, max_ms=2000) == 2000  # capped at the whole window
    assert rate.measure(2000) == 0  # the sample is older than samples x window: gone
    rate.record(-500, 2000)  # an un-recorded answer takes its bytes back
    assert rate.measure(2000) < 0


def simulate(samples: int, bound: float, request_bytes: int, duration_ms: int) -> float:
    """A client sending one request at a time, waiting each throttle: its average rate."""
    rate = Rate(samples=samples, window_ms=1000)
    now, sent = 0, 0
    while now < duration_ms:
        rate.record(request_bytes, now)
        sent += request_bytes
        now += 2 + throttle_ms(rate, bound, now, samples * 1000)
    return sent / (now / 1000)


def test_a_busy_client_averages_its_quota() -> None:
    """Over many whole windows a client sending as fast as it may runs at its quota, with
    Kafka's window (11 samples: bursty, so a long run) and with 2 samples."""
    for samples in (2, 11):
        average = simulate(samples, 400_000, 16_000, 220_000)
        assert 0.95 * 400_000 <= average <= 1.1 * 400_000, (samples, average)
