"""The LLM layer: retries, re-asks, failure recording and caching, against the fake provider."""

from __future__ import annotations

import asyncio

import pytest

from clusterdiv.core.prompts import PromptTemplate
from clusterdiv.llm.structured import CallStats, FatalLLMError, LLMSettings, agenerate_structured


@pytest.fixture
def prompt() -> PromptTemplate:
    return PromptTemplate.load()


def ask(prompt, text, model, cache, stats=None, **settings):
    return asyncio.run(agenerate_structured(
        prompt, {"text": text}, prompt.output_model,
        model=LLMSettings(model=model, **settings), cache=cache, stats=stats,
    ))


def test_valid_answer_is_validated_and_cached(prompt, cache, fake_llm):
    stats = CallStats()
    first = ask(prompt, "set an alarm for 6am", "fake/echo", cache, stats)
    assert first.ok and first.value == {"intent": "set an", "topic": "6am", "task": "question", "style": "casual"}
    assert (first.cached, first.attempts, stats.calls) == (False, 1, 1)
    second = ask(prompt, "set an alarm for 6am", "fake/echo", cache, stats)
    assert second.cached and second.value == first.value
    assert stats.calls == 1 and stats.cache_hits == 1


def test_invalid_json_is_reasked_with_the_error_then_accepted(prompt, cache, fake_llm):
    stats = CallStats()
    outcome = ask(prompt, "play jazz", "fake/flaky", cache, stats)
    assert outcome.ok and outcome.attempts == 2 and stats.calls == 2


def test_raw_newline_inside_a_string_is_accepted_without_a_reask(prompt, cache, fake_llm):
    # strict JSON forbids control characters in strings; the object is otherwise valid, so re-asking
    # (two or three more calls on a slow local model) would buy nothing
    stats = CallStats()
    outcome = ask(prompt, "set an alarm for 6am", "fake/rawnewline", cache, stats)
    assert outcome.ok and outcome.attempts == 1 and stats.calls == 1
    assert outcome.value["intent"] == "set an" and outcome.value["topic"] == "6am"  # values are stripped


def test_junk_is_recorded_as_failure_after_last_attempt(prompt, cache, fake_llm):
    stats = CallStats()
    outcome = ask(prompt, "play jazz", "fake/junk", cache, stats, max_attempts=3)
    assert not outcome.ok and outcome.value is None
    assert "invalid answer after 3 attempts" in (outcome.error or "")
    assert stats.calls == 3 and stats.failures == 1
    # The deterministic failure is cached: a rerun does not pay for the same junk again.
    again = ask(prompt, "play jazz", "fake/junk", cache, stats, max_attempts=3)
    assert again.cached and not again.ok and stats.calls == 3


def test_rate_limit_is_retried_with_backoff(prompt, cache, fake_llm, monkeypatch):
    import clusterdiv.llm.structured as structured

    monkeypatch.setattr(structured, "_backoff", lambda state: 0.0)
    stats = CallStats()
    outcome = ask(prompt, "what's my balance", "fake/ratelimit", cache, stats)
    assert outcome.ok and outcome.attempts == 2 and stats.calls == 2


def test_transient_failure_is_recorded_but_not_cached(prompt, cache, fake_llm, monkeypatch):
    import clusterdiv.llm.structured as structured

    monkeypatch.setattr(structured, "_backoff", lambda state: 0.0)
    outcome = ask(prompt, "hello there", "fake/ratelimit", cache, max_attempts=1)
    assert not outcome.ok and "RateLimitError" in (outcome.error or "")
    retried = ask(prompt, "hello there", "fake/ratelimit", cache, max_attempts=1)
    assert not retried.cached and retried.ok  # second call is the provider's 2nd attempt: succeeds


def test_authentication_error_aborts_the_run(prompt, cache, fake_llm):
    with pytest.raises(FatalLLMError, match="AuthenticationError"):
        ask(prompt, "anything", "fake/auth", cache)


def test_unknown_provider_is_a_fatal_configuration_error(prompt, cache, fake_llm):
    with pytest.raises(FatalLLMError):
        ask(prompt, "anything", "nosuchprovider-xyz/model", cache)
