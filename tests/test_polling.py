"""The polling schedule: cheap for long jobs, quick for fast ones."""

from __future__ import annotations

import pytest

from activities.wait import next_poll_delay, poll_policy_for
from contracts.operation import PollPolicy
from providers.catalogue import load_catalogue


def poll_times(policy: PollPolicy, job_seconds: float, first: float = 0.05) -> list[float]:
    """Times of every poll until one sees a job that finishes at ``job_seconds``."""
    times = [first]
    while times[-1] < job_seconds:
        times.append(times[-1] + next_poll_delay(policy, times[-1]))
    return times


@pytest.mark.parametrize("typical", [8, 10, 15])
def test_a_30_second_job_costs_at_most_six_polls(typical: int) -> None:
    assert len(poll_times(PollPolicy(expected_seconds=typical), 30.0)) <= 6


def test_fast_jobs_are_seen_within_a_second() -> None:
    assert poll_times(PollPolicy(expected_seconds=60), 0.3)[-1] <= 0.6


def test_a_job_of_typical_length_is_seen_when_it_ends() -> None:
    times = poll_times(PollPolicy(expected_seconds=10), 10.0)
    assert times[-1] == pytest.approx(10.0, abs=0.1)


def test_intervals_never_exceed_the_cap_and_timeouts_follow_the_output_kind() -> None:
    policy = PollPolicy(expected_seconds=10, max_interval_seconds=30)
    assert next_poll_delay(policy, 3600) == 30
    catalogue = load_catalogue()
    image = poll_policy_for(catalogue.get("qwen-image"))
    model_3d = poll_policy_for(catalogue.get("hunyuan3d-v2.1"))
    assert model_3d.timeout_seconds > image.timeout_seconds
