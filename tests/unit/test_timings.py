"""jobs/timings.py without Redis: what a finished job adds, and the histograms read back from it."""
from __future__ import annotations

from jobs import timings


class Pipe:
    """Records HINCRBYs as Redis would apply them to the one hash."""

    def __init__(self) -> None:
        self.hash: dict[str, int] = {}
        self.commands = 0

    def hincrby(self, key: str, field: str, amount: int) -> Pipe:
        assert key == timings.KEY
        self.hash[field] = self.hash.get(field, 0) + amount
        self.commands += 1
        return self


def read(pipe: Pipe) -> dict[str, dict[str, timings.Histogram]]:
    return timings.read({field.encode(): str(value).encode() for field, value in pipe.hash.items()})


def test_a_job_costs_three_increments_and_two_without_a_known_wait():
    pipe = Pipe()
    timings.add(pipe, "calc_hash", 0.03, 1.2)
    assert pipe.commands == 3
    timings.add(pipe, "calc_hash", 0.03, None)
    assert pipe.commands == 5


def test_each_histogram_is_cumulative_with_its_sum_and_count():
    pipe = Pipe()
    timings.add(pipe, "calc_hash", 0.03, 1.2)
    timings.add(pipe, "calc_hash", 7.0, None)
    runtime, wait = (read(pipe)[kind]["calc_hash"] for kind in (timings.RUNTIME, timings.WAIT))
    assert dict(runtime.buckets)["0.025"] == 0 and dict(runtime.buckets)["0.05"] == 1
    assert dict(runtime.buckets)["10.0"] == 2 and runtime.count == 2 and runtime.sum == 7.03
    assert dict(wait.buckets)["1.0"] == 0 and dict(wait.buckets)["2.5"] == 1 and wait.count == 1 and wait.sum == 1.2


def test_values_past_the_last_bound_count_in_inf_only():
    pipe = Pipe()
    timings.add(pipe, "slow", 10_000.0, 10_000.0)
    for kind in (timings.RUNTIME, timings.WAIT):
        buckets = read(pipe)[kind]["slow"].buckets
        assert buckets[-1] == ("+Inf", 1) and buckets[-2][1] == 0


def test_a_bound_no_longer_configured_counts_in_the_next_one_above():
    histogram = read_fields({"bucket|t|0.7|0.7": 1})
    assert dict(histogram[timings.RUNTIME]["t"].buckets)["0.5"] == 0
    assert dict(histogram[timings.RUNTIME]["t"].buckets)["1.0"] == 1


def test_types_with_the_separator_in_their_name_keep_it():
    pipe = Pipe()
    timings.add(pipe, "a|b", 1.0, 1.0)
    assert set(read(pipe)[timings.RUNTIME]) == {"a|b"} and read(pipe)[timings.WAIT]["a|b"].sum == 1.0


def read_fields(fields: dict[str, int]) -> dict[str, dict[str, timings.Histogram]]:
    return timings.read({field: str(value) for field, value in fields.items()})
