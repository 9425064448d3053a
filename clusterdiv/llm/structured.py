"""One way to ask any LLM for a validated pydantic object: cached, retried, failures recorded.

Every call goes through litellm (hosted models, Ollama, vLLM, OpenAI-compatible servers and the
embedded local model alike). Transient errors (rate limits, timeouts, dropped connections) are
retried with exponential backoff; an answer that fails validation is re-asked at once with the
validation error appended, because a model can often fix its own JSON when told what was wrong.
After the last attempt the example is recorded as failed with the reason, never dropped or
filled in.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

import clusterdiv.llm  # noqa: F401  (offline cost map before litellm import)
from clusterdiv.core.aio import start_call, unless_interrupted
from clusterdiv.core.cache import ModelCache, make_key, stable_hash
from clusterdiv.core.errors import ClusterdivError
from clusterdiv.core.progress import announces, format_duration
from clusterdiv.core.prompts import PromptTemplate
from clusterdiv.llm import DEFAULT_LLM
from clusterdiv.llm.plugins import get_registry

# litellm makes each request's coroutine in a worker thread (`run_in_executor`); a request cancelled
# at that moment (the systematic-error stop, Ctrl-C past its grace) leaves that coroutine never
# awaited, and Python said so on stderr below the one error line. The request was never sent.
warnings.filterwarnings("ignore", message=r"coroutine '\w+\.acompletion' was never awaited", category=RuntimeWarning)


class LLMSettings(BaseModel):
    """Which model and how to call it; every field that can change an answer enters the cache key."""

    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_LLM
    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = Field(default=160, ge=8)
    max_attempts: int = Field(default=3, ge=1, le=10)
    timeout: float = Field(default=120.0, gt=0)
    api_base: str | None = None
    # Never part of the cache key or the report; None = the provider's own environment variable.
    api_key: SecretStr | None = Field(default=None, repr=False)
    concurrency: int = Field(default=4, ge=1, le=256)
    max_input_chars: int = Field(default=1200, ge=50)
    # What the run may spend (never part of the cache key: they decide whether to ask, not the answer).
    # `dry_run`: plan only, no call. `max_calls` / `max_cost` (USD): a step whose plan exceeds what is
    # left is refused before its first call unless `partial`, and a run stops asking once spent.
    dry_run: bool = False
    max_calls: int | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)
    partial: bool = False

    def answer_affecting(self) -> dict[str, Any]:
        """The parameters that can change a model's answer (concurrency and retries cannot)."""
        return {
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "api_base": self.api_base,
            "max_input_chars": self.max_input_chars,
        }


class LLMOutcome(BaseModel):
    """The result for one input: a validated value, or the reason it failed."""

    value: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class CallStats:
    """What a run actually paid for: model calls made (attempts), failures and tokens."""

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0  # litellm's price of the usage the provider reported, for priced models
    unpriced_calls: int = 0  # answered calls whose model litellm's cost map does not price
    not_asked: int = 0  # examples left unasked because the budget was spent
    stopped: str | None = None  # why the run stopped asking (its budget), or None
    plan: list[StepPlan] = field(default_factory=list)  # each LLM step's plan, in order
    dry_run: bool = False  # a dry run reached an LLM step: the run context ends it with the plan
    errors: list[str] = field(default_factory=list)
    last_error: str | None = None  # the signature of the previous example's final error, to spot systematic ones
    error_streak: int = 0  # examples in a row that ended with that same error


SYSTEMATIC_ERROR_STREAK = 3
"""After this many examples in a row end with the same error, the run stops (FatalLLMError):
a wrong endpoint or an unsupported request fails all 10,000 examples alike, and retrying each one
would take hours and pay for nothing."""

# How the answer's JSON schema is sent, best first. A server that refuses one (llama-cpp-python's
# takes `json_object` with a `schema`, some take only `json_object`, some nothing) is moved to the
# next once, for the rest of the process; the answer is validated (and re-asked) in every mode.
RESPONSE_FORMAT_MODES = ("json_schema", "json_object_schema", "json_object", "prompt")
_format_modes: dict[tuple[str, str | None], str] = {}
_format_lock = threading.Lock()


def response_format_mode(settings: LLMSettings) -> str:
    return _format_modes.get((settings.model, settings.api_base), RESPONSE_FORMAT_MODES[0])


def _downgrade_format(settings: LLMSettings, tried: str) -> bool:
    """Move this endpoint past `tried`; False when there is nothing left to try."""
    key = (settings.model, settings.api_base)
    with _format_lock:
        current = _format_modes.get(key, RESPONSE_FORMAT_MODES[0])
        if current != tried:  # another request already moved on: retry with that one
            return True
        index = RESPONSE_FORMAT_MODES.index(current)
        if index + 1 >= len(RESPONSE_FORMAT_MODES):
            return False
        _format_modes[key] = RESPONSE_FORMAT_MODES[index + 1]
    warnings.warn(f"{settings.model}{' at ' + settings.api_base if settings.api_base else ''} refused "
                  f"response_format {tried!r}; using {RESPONSE_FORMAT_MODES[index + 1]!r} for the rest of the run",
                  ResponseFormatWarning, stacklevel=2)
    return True


class ResponseFormatWarning(UserWarning):
    pass


def _format_refused(exc: BaseException) -> bool:
    """The server rejected the request because of `response_format` (not a transient problem)."""
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text or "response format" in text


def _request_format(mode: str, schema: type[BaseModel], messages: list[dict[str, Any]]
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    json_schema = schema.model_json_schema()
    if mode == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": json_schema, "strict": True}}, messages
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": json_schema}, messages
    if mode == "json_object":
        return {"type": "json_object"}, messages
    instruction = ("Reply with one JSON object only, no other text, matching this JSON schema: "
                   + json.dumps(json_schema, sort_keys=True))
    first, rest = messages[0], messages[1:]
    if first.get("role") == "system":
        return None, [{**first, "content": f"{first['content']}\n\n{instruction}"}, *rest]
    return None, [{"role": "system", "content": instruction}, *messages]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _error_signature(exc: BaseException) -> str:
    """What makes two examples' failures the same error, for the systematic-error stop.

    A transient error (timeout, refused connection, rate limit, 5xx) that outlived every retry is
    about the endpoint, never the example: its class alone is the signature (a timeout's message
    holds the seconds it waited, a new number each time, so comparing messages never stopped a run
    against a server that does not answer). Any other error may be about the example (a 400 for
    one text), so its message counts too, with numbers masked.
    """
    if _is_transient(exc):
        return type(exc).__name__
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {_NUMBER.sub('#', first)[:160]}"


def _note_error(stats: CallStats, error: str, exc: BaseException) -> None:
    signature = _error_signature(exc)
    stats.error_streak = stats.error_streak + 1 if signature == stats.last_error else 1
    stats.last_error = signature
    if stats.error_streak >= SYSTEMATIC_ERROR_STREAK:
        raise FatalLLMError(f"stopping: {stats.error_streak} examples in a row failed with the same error, "
                            f"so it is not about the examples: {error}")


class FatalLLMError(ClusterdivError):
    """A configuration problem (bad key, unknown model) that would fail every example alike."""


class InvalidAnswer(Exception):
    """The model answered, but not with a valid object."""


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def _parse(content: str | None, schema: type[BaseModel]) -> BaseModel:
    if not content or not content.strip():
        raise InvalidAnswer("empty reply")
    text = _FENCE.sub("", content.strip())
    try:
        try:
            return schema.model_validate_json(text)
        except ValidationError as exc:
            # A raw newline or tab inside a string (small local models emit them despite the grammar)
            # is the only defect forgiven: the same object, re-serialised; anything else is re-asked.
            if not any(err["type"] == "json_invalid" and "control character" in err["msg"] for err in exc.errors()):
                raise
            try:
                obj = json.loads(text, strict=False)
            except ValueError:
                raise exc from None
            return schema.model_validate_json(json.dumps(obj))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}" for err in exc.errors()[:4]
        )
        raise InvalidAnswer(problems) from exc


def _is_transient(exc: BaseException) -> bool:
    import litellm

    transient = (
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.ServiceUnavailableError,
        litellm.InternalServerError,
    )
    return isinstance(exc, transient)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, InvalidAnswer) or _is_transient(exc)


def _backoff(state: RetryCallState) -> float:
    """Re-ask invalid answers immediately; back off exponentially (capped) on transient errors."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, InvalidAnswer):
        return 0.0
    return min(30.0, 1.0 * 2 ** (state.attempt_number - 1))


def _raise_if_fatal(exc: BaseException) -> None:
    import litellm

    fatal = (litellm.AuthenticationError, litellm.PermissionDeniedError, litellm.NotFoundError)
    if isinstance(exc, fatal) or isinstance(exc, ClusterdivError):
        raise FatalLLMError(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    if isinstance(exc, litellm.BadRequestError) and "LLM Provider NOT provided" in str(exc):
        raise FatalLLMError(f"unknown model provider: {str(exc).splitlines()[0][:300]}") from exc


LOCAL_ENDPOINT_KEY = "sk-no-key-required"
"""Sent to a self-hosted `--api-base` when no key is configured: OpenAI-compatible servers without
auth (vLLM, llama.cpp, llama-cpp-python) ignore it, but litellm's OpenAI client refuses to send a
request with no key at all ("Missing credentials")."""

_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY",
                  "openai_like": "OPENAI_LIKE_API_KEY"}


def _api_key(settings: LLMSettings) -> str | None:
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    provider = settings.model.split("/", 1)[0]
    variable = _KEY_VARIABLES.get(provider)
    if settings.api_base and variable and not os.environ.get(variable):
        return LOCAL_ENDPOINT_KEY
    return None


def _cached_outcome(hit: Any, schema: type[BaseModel]) -> LLMOutcome | None:
    """A cache hit as an outcome, or None when it is not what `agenerate_structured` stored."""
    if not isinstance(hit, dict):
        return None
    try:
        outcome = LLMOutcome.model_validate({**hit, "cached": True})
        if outcome.value is not None:
            schema.model_validate(outcome.value)
        elif not outcome.error:
            return None
    except ValidationError:
        return None
    return outcome


def llm_cache_key(prompt: PromptTemplate, variables: dict[str, Any], schema: type[BaseModel], *,
                  settings: LLMSettings) -> str:
    return make_key(
        "llm",
        model=get_registry().fingerprint(settings.model),
        prompt_sha256=prompt.content_hash,
        params=settings.answer_affecting(),
        schema=stable_hash(schema.model_json_schema()),
        input=stable_hash(variables),
    )


def _seconds_per_call(settings: LLMSettings) -> float | None:
    """A measured rate for the bundled model; None for any other (its speed is the server's)."""
    from clusterdiv.llm.local import SECONDS_PER_CALL

    provider, _, name = settings.model.partition("/")
    return SECONDS_PER_CALL if provider == "local" and name in {"smollm2", "SmolLM2", "smollm2-135m"} else None


def price(settings: LLMSettings, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars for these tokens from litellm's offline cost map; None where it has no price: an
    in-process or self-hosted model (`api_base`: the map's price is the vendor's, not the server's)
    or a model the map does not know. The one pricing rule of plans, budgets and spend."""
    if settings.api_base or get_registry().handler_for(settings.model) is not None:
        return None
    import litellm

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=settings.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except Exception:  # not in the cost map: litellm raises, in several ways
        return None
    return float(prompt_cost) + float(completion_cost)


def count_prompt_tokens(settings: LLMSettings, schema: type[BaseModel], messages: list[dict[str, Any]]) -> int:
    """The prompt tokens one request will send, by litellm's token counter for the model (its own
    tokenizer where litellm knows one, else tiktoken's cl100k), on the messages exactly as sent."""
    import litellm

    _, sent = _request_format(response_format_mode(settings), schema, messages)
    return int(litellm.token_counter(model=settings.model, messages=sent))


class StepPlan(BaseModel):
    """What one LLM step will send before it sends it: calls are its cache misses (one per example;
    a retry or a re-ask is a further call, so the actual count can only be higher), prompt tokens
    counted on the real prompts, completion tokens at most `max_tokens` per call."""

    stage: str
    model: str
    calls: int
    cached: int
    prompt_tokens: int
    completion_tokens_max: int
    cost_usd_max: float | None  # None: litellm's cost map has no price for the model ("unknown price")


class LLMPlan(BaseModel):
    """A dry run's answer: each LLM step reached, and whether the plan covers the whole run."""

    steps: list[StepPlan]
    complete: bool  # True: the run went to its end (every step planned); False: planning stopped at a step with calls
    note: str | None = None

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.steps)

    def totals(self) -> dict[str, Any]:
        costs = [s.cost_usd_max for s in self.steps if s.calls]
        return {"calls": self.calls, "cached": sum(s.cached for s in self.steps),
                "prompt_tokens": sum(s.prompt_tokens for s in self.steps),
                "completion_tokens_max": sum(s.completion_tokens_max for s in self.steps),
                "cost_usd_max": None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 6)}

    def to_json(self) -> str:
        return json.dumps({**self.model_dump(mode="json"), "totals": self.totals()}, indent=2)


class PlanReady(ClusterdivError):  # noqa: N818  (a signal, not a failure)
    """Raised by a dry run at its first step with cache misses, before any call: carries the plan.
    Exit 0 (the CLI renders the plan); a step whose answers are all cached is planned and run."""

    exit_code = 0

    def __init__(self, plan: LLMPlan):
        super().__init__(f"plan: {plan.calls} LLM calls")
        self.plan = plan


class BudgetExceeded(ClusterdivError):
    """A step's plan exceeds what is left of the budget: refused before its first call (exit 2)."""

    exit_code = 2


class _BudgetSpent(Exception):
    """Inside `agenerate_structured`: the budget is spent, so this example is not asked."""


def budget_left(settings: LLMSettings, stats: CallStats) -> str | None:
    """Why no further call may be sent (the budget is spent), or None."""
    if settings.max_calls is not None and stats.calls >= settings.max_calls:
        return f"stopped at its budget of {settings.max_calls} calls"
    if settings.max_cost is not None and stats.cost_usd >= settings.max_cost:
        return f"stopped at its budget of ${settings.max_cost:g} (spent ${stats.cost_usd:.4f})"
    return None


def plan_calls(stage: str, prompt: PromptTemplate, inputs: list[dict[str, Any]], schema: type[BaseModel], *,
               settings: LLMSettings, cache: Any) -> StepPlan | None:
    """A step's plan from its cache misses (looked up without counting as reads: `ModelCache.stored`);
    None when `cache` cannot be looked into (an engine worker's recorder)."""
    stored = getattr(cache, "stored", None)
    if stored is None:
        return None
    keys = [llm_cache_key(prompt, v, schema, settings=settings) for v in inputs]
    found = stored(keys) if keys else set()
    # one call per distinct miss: a text given twice is asked once, and the second finds it cached
    asked = list({k: v for k, v in zip(keys, inputs, strict=True) if k not in found}.values())
    prompt_tokens = sum(count_prompt_tokens(settings, schema, prompt.messages(**v)) for v in asked) if asked else 0
    completion_max = len(asked) * settings.max_tokens
    cost = price(settings, prompt_tokens, completion_max) if asked else 0.0
    return StepPlan(stage=stage, model=settings.model, calls=len(asked), cached=len(inputs) - len(asked),
                    prompt_tokens=prompt_tokens, completion_tokens_max=completion_max,
                    cost_usd_max=None if cost is None else round(cost, 6))


def _check_budget(plan: StepPlan, settings: LLMSettings, stats: CallStats) -> None:
    """Refuse a step whose plan exceeds what is left of the budget (unless spending it in parts)."""
    if settings.partial:
        return
    if settings.max_calls is not None and stats.calls + plan.calls > settings.max_calls:
        raise BudgetExceeded(
            f"the plan exceeds the budget: {plan.stage} needs {plan.calls} calls ({plan.cached} cached), "
            f"{settings.max_calls} allowed, {stats.calls} already made; nothing was sent for this step "
            "(raise the budget, or spend it in parts and rerun to resume)", option="max_calls")
    if settings.max_cost is not None and plan.cost_usd_max is not None \
            and stats.cost_usd + plan.cost_usd_max > settings.max_cost:
        raise BudgetExceeded(
            f"the plan exceeds the budget: {plan.stage} costs at most ${plan.cost_usd_max:.4f} "
            f"({plan.calls} calls, {plan.prompt_tokens} prompt tokens, {plan.completion_tokens_max} completion "
            f"tokens at most), ${settings.max_cost:g} allowed, ${stats.cost_usd:.4f} already spent; nothing was "
            "sent for this step (raise the budget, or spend it in parts and rerun to resume)", option="max_cost")


def announce_calls(progress: Any, stage: str, prompt: PromptTemplate, inputs: list[dict[str, Any]],
                   schema: type[BaseModel], *, settings: LLMSettings, cache: Any, workers: int = 1,
                   stats: CallStats | None = None) -> int | None:
    """Before a step's first LLM call: its plan (`plan_calls`), checked against the budget, and one
    line on `progress`: the model, the calls the step will send (its cache misses), the expected time
    and, for a priced model, the most it can cost (the prompt tokens are the dry run's to show):

        LLM: local/smollm2 · criteria · 289 calls (12 cached) · about 3 min 22 s

    Every LLM step calls this once, so no step pays for minutes of calls without saying so first;
    nothing is said when every answer is cached. A dry run (`settings.dry_run`) stops here with the
    plan (`PlanReady`) at the first step with misses. Returns the calls counted (None when `cache`
    cannot be looked into, e.g. an engine worker's recorder, or `progress` takes no announcements)."""
    stats = stats if stats is not None else CallStats()
    if not inputs and not settings.dry_run:
        return None
    plan = plan_calls(stage, prompt, inputs, schema, settings=settings, cache=cache)
    if plan is None:
        return None
    stats.plan.append(plan)
    if settings.dry_run:
        stats.dry_run = True
        if plan.calls:
            raise PlanReady(LLMPlan(steps=stats.plan, complete=False,
                                    note=f"planned up to {stage}, the first step with calls to make: a later LLM step, if the command has one, depends on its answers"))
        return 0
    _check_budget(plan, settings, stats)
    if not announces(progress):
        return None
    if not plan.calls:
        return 0
    calls = plan.calls
    parts = [f"LLM: {settings.model}", stage, f"{calls} call{'s' if calls != 1 else ''} ({plan.cached} cached)"]
    rate = _seconds_per_call(settings)
    parts.append(f"about {format_duration(calls * rate / max(1, workers))}" if rate is not None else "time unknown")
    cost = plan.cost_usd_max
    if cost:
        parts.append(f"at most ${cost:.2f}" if cost >= 0.01 else "under $0.01")
    progress.announce(" · ".join(parts))
    return calls


async def agenerate_structured(
    prompt: PromptTemplate,
    variables: dict[str, Any],
    schema: type[BaseModel],
    *,
    model: LLMSettings,
    cache: ModelCache,
    stats: CallStats | None = None,
) -> LLMOutcome:
    """Ask `model` for one `schema` object; cached under model+prompt hash+params+schema+input."""
    stats = stats if stats is not None else CallStats()
    key = llm_cache_key(prompt, variables, schema, settings=model)
    hit = cache.get(key)
    if hit is not None:
        cached = _cached_outcome(hit, schema)
        if cached is not None:
            stats.cache_hits += 1
            return cached
        cache.reject(key)  # damaged or foreign entry: counted as corrupt, asked again below

    if model.dry_run:  # a step that planned nothing (no announcement) still sends nothing
        raise PlanReady(LLMPlan(steps=stats.plan, complete=False, note="an LLM step was reached unplanned"))
    stopped = budget_left(model, stats)
    if stopped is not None:
        # Not asked, not cached, not a failure of the example: a rerun (with budget left) asks it.
        stats.stopped, stats.not_asked = stopped, stats.not_asked + 1
        return LLMOutcome(error=f"not asked: the run {stopped}")

    import litellm  # only on a cache miss: importing it takes seconds

    litellm.suppress_debug_info = True  # its "Give Feedback" banner goes to stdout, into --format json
    registry = get_registry()
    handler = registry.handler_for(model.model)
    # An in-process provider (the local model) offers the thread its calls must run on: there the sync
    # litellm.completion runs, off litellm's async path, whose background logging tasks slowed every
    # llama.cpp call in the process (eval/bench_llm.py). Remote models keep the async path.
    executor = getattr(handler, "executor", None) if handler is not None else None
    messages = prompt.messages(**variables)
    attempts = 0
    outcome: LLMOutcome
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(model.max_attempts),
            wait=_backoff,
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                attempts += 1
                kwargs: dict[str, Any] = {
                    "model": model.model,
                    "temperature": model.temperature,
                    "seed": model.seed,
                    "max_tokens": model.max_tokens,
                    "timeout": model.timeout,
                    "num_retries": 0,  # tenacity owns retries, so they are counted and bounded once
                }
                if model.api_base:
                    kwargs["api_base"] = model.api_base
                api_key = _api_key(model)
                if api_key is not None:
                    kwargs["api_key"] = api_key
                if handler is None:
                    kwargs["drop_params"] = True  # providers without seed/json_schema still answer
                while True:  # a refused response_format moves to the next mode at once, not per attempt
                    mode = response_format_mode(model)
                    response_format, sent = _request_format(mode, schema, messages)
                    kwargs["messages"] = sent
                    if response_format is None:
                        kwargs.pop("response_format", None)
                    else:
                        kwargs["response_format"] = response_format
                    if not start_call():  # Ctrl-C: nothing new is sent; answers already asked for still arrive
                        raise asyncio.CancelledError
                    spent = budget_left(model, stats)  # checked and counted with no await between
                    if spent is not None:
                        raise _BudgetSpent(spent)
                    stats.calls += 1
                    try:
                        if executor is not None:
                            response = await asyncio.wrap_future(executor.submit(
                                unless_interrupted(functools.partial(litellm.completion, **kwargs))))
                        else:
                            response = await litellm.acompletion(**kwargs)
                        break
                    except Exception as exc:  # classify, then let tenacity decide
                        if _format_refused(exc) and not isinstance(exc, ClusterdivError) \
                                and _downgrade_format(model, mode):
                            continue
                        _raise_if_fatal(exc)
                        raise
                usage = getattr(response, "usage", None)
                if usage is not None:
                    used = (int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0))
                    stats.prompt_tokens += used[0]
                    stats.completion_tokens += used[1]
                    cost = price(model, *used)
                    if cost is None:
                        stats.unpriced_calls += 1
                    else:
                        stats.cost_usd += cost
                content = response.choices[0].message.content
                try:
                    value = _parse(content, schema)
                except InvalidAnswer as exc:
                    messages = messages + [
                        {"role": "assistant", "content": content or ""},
                        {
                            "role": "user",
                            "content": f"That reply was invalid ({exc}). Reply again with JSON only, "
                            f"with exactly the fields {list(schema.model_fields)}.",
                        },
                    ]
                    raise
        outcome = LLMOutcome(value=value.model_dump(mode="json"), attempts=attempts)
        cache.set(key, outcome.model_dump(exclude={"cached"}))
        stats.error_streak, stats.last_error = 0, None
    except InvalidAnswer as exc:
        # Deterministic settings give the same junk again, so the failure itself is cached:
        # a rerun does not pay for it twice (clear the cache or change settings to retry).
        outcome = LLMOutcome(error=f"invalid answer after {attempts} attempts: {exc}", attempts=attempts)
        cache.set(key, outcome.model_dump(exclude={"cached"}))
        stats.failures += 1
    except _BudgetSpent as exc:  # mid-example (a retry): what it paid for is counted, nothing is cached
        stats.stopped, stats.not_asked = str(exc), stats.not_asked + 1
        outcome = LLMOutcome(error=f"not asked: the run {exc}", attempts=attempts - 1)
    except FatalLLMError:
        raise
    except Exception as exc:
        if not _is_transient(exc):
            _raise_if_fatal(exc)
        # Transient or per-input errors are recorded for this example but not cached: next run retries.
        outcome = LLMOutcome(
            error=f"{type(exc).__name__} after {attempts} attempts: {str(exc).splitlines()[0][:200]}",
            attempts=attempts,
        )
        stats.failures += 1
        _note_error(stats, outcome.error or "", exc)
    return outcome


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
