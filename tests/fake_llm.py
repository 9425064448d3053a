"""A fake LLM provider for tests, registered through the real plugin path (CLUSTERDIV_PLUGINS).

Model names choose a behaviour:
  fake/echo        criteria derived from the text: intent = first two words, topic = last word
  fake/junk        always answers with invalid JSON
  fake/flaky       invalid on the first attempt for each input, valid after the re-ask
  fake/ratelimit   raises RateLimitError on the first attempt for each input, then answers
  fake/auth        raises AuthenticationError (a fatal configuration error)
  fake/picky       valid, except for texts containing "#junk", which always get invalid JSON
  fake/slow        like echo but takes FAKE_LLM_DELAY seconds per call (for kill/resume tests); on the
                   async path it waits without blocking the event loop, as a remote server's answer does
  fake/noformat    like echo, but refuses any request that carries a response_format (400), as some
                   OpenAI-compatible servers do: the caller must fall back to the schema in the prompt
  fake/judge       tail-membership judge: member = "yes" when a keyword of the category description
                   (a word of 4+ letters, not a stopword) appears in the text; echo for other prompts
  fake/rawnewline  like echo, but with a raw (unescaped) newline inside the first string, as small local
                   models emit despite the grammar
  fake/yesman      a judge that says "yes" to every membership question (as the 135M model nearly does)
  fake/metered     like echo, but reports usage (prompt and completion tokens by litellm's counter on the
                   messages and the reply), as a real server does: what a run's spend is read from
  fake/ramble      like echo, but its cluster descriptions are a generic ramble about credit card fraud,
                   about none of the group's messages (as the 135M model writes); names stay "<word>"
Naming: every model that answers at all (junk never does; picky not when a shown text has "#junk")
answers the cluster-naming schema (a `name` property in the requested response_format) with
name = "<most common first word>" over the members of the group to name (ties alphabetical; a word
of its members, so the name passes the explorer's grounding check), so tests can tell an LLM name
from an extractive one. fake/misname names every group "dumbbell requests" (words of no member, as
the 135M model called a timezone mode), which the grounding check must refuse.
Every call appends one line to $FAKE_LLM_CALL_LOG when set, so subprocess tests can count calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections import Counter
from typing import Any

_TEXT = re.compile(r"<<<\n(.*)\n>>>", re.DOTALL)


def _message_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            found = _TEXT.search(message["content"])
            if found:
                return found.group(1)
    return ""


_DESCRIPTION = re.compile(r"^Category description: (.*)$", re.MULTILINE)
_STOPWORDS = {"about", "with", "from", "that", "this", "into", "asking", "requests", "request", "questions",
              "question", "someone", "something", "their", "what", "when", "which", "where", "wants", "user"}


def judge_member(description: str, text: str) -> str:
    keywords = {w for w in re.findall(r"[a-z]+", description.lower()) if len(w) >= 4 and w not in _STOPWORDS}
    return "yes" if keywords & set(re.findall(r"[a-z]+", text.lower())) else "no"


_GROUP = "The group to name:"
_MEMBER = re.compile(r"<<<\n(.*?)\n>>>", re.DOTALL)


def _schema_properties(optional_params: dict[str, Any]) -> set[str]:
    response_format = optional_params.get("response_format") or {}
    if not isinstance(response_format, dict):
        return set()
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return set(schema.get("properties") or {})


def name_cluster(content: str) -> dict[str, str]:
    """A deterministic name for the group in a naming prompt: its members' most common first word."""
    members = _MEMBER.findall(content.split(_GROUP, 1)[-1])
    firsts = Counter((re.findall(r"\w+", m.lower()) or ["empty"])[0] for m in members)
    word = min(firsts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if firsts else "empty"
    return {"name": word, "description": f"Messages that mostly start with '{word}'."}


RAMBLE = "Credit card fraud is a serious issue that can happen to anyone, anywhere, at any time."


def echo_criteria(text: str) -> dict[str, str]:
    words = re.findall(r"\w+", text.lower()) or ["empty"]
    return {"intent": " ".join(words[:2]), "topic": words[-1], "task": "question", "style": "casual"}


def delay() -> float:
    return float(os.environ.get("FAKE_LLM_DELAY", "0.05"))


class FakeLLM:
    """The answers. Mixed into litellm's CustomLLM by `handler()` only when a call needs it, as the
    local model is: a subprocess that never calls the LLM (a cache hit, `--representation text`,
    `track`) then never imports litellm, which costs seconds, just as a user's would not."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _log(self, model: str, text: str, api_key: Any = None) -> int:
        with self.lock:
            self.calls[(model, text)] += 1
            n = self.calls[(model, text)]
        log = os.environ.get("FAKE_LLM_CALL_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"model": model, "text": text, "api_key": api_key}) + "\n")
        return n

    def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                   model_response: Any, print_verbose: Any, encoding: Any, api_key: Any,
                   logging_obj: Any, optional_params: dict, **kwargs: Any) -> Any:
        import litellm

        text = _message_text(messages)
        attempt = self.calls[(model, text)] if kwargs.pop("logged", False) else self._log(model, text, api_key)
        if model == "auth":
            raise litellm.AuthenticationError(message="bad key", llm_provider="fake", model=model)
        if model == "ratelimit" and attempt == 1:
            raise litellm.RateLimitError(message="slow down", llm_provider="fake", model=model)
        if model == "slow" and not kwargs.pop("waited", False):
            time.sleep(delay())
        if model == "noformat" and optional_params.get("response_format"):
            raise litellm.BadRequestError(message="response_format is not supported by this server",
                                          llm_provider="fake", model=model)
        if model == "junk" or (model == "picky" and "#junk" in text) or (model == "flaky" and messages[-1]["content"].startswith("Message")):
            content = "Sure! Here is the JSON you asked for: {intent: oops"
        elif model == "judge" and (found := _DESCRIPTION.search(messages[-1]["content"])):
            content = json.dumps({"member": judge_member(found.group(1), text)})
        elif model == "yesman" and _DESCRIPTION.search(messages[-1]["content"]):
            content = json.dumps({"member": "yes"})
        elif "name" in _schema_properties(optional_params):
            named = name_cluster(messages[-1]["content"])
            if model == "misname":
                named = {**named, "name": "dumbbell requests"}
            content = json.dumps({**named, "description": RAMBLE} if model == "ramble" else named)
        elif model == "rawnewline":
            content = json.dumps(echo_criteria(text)).replace('", "', '\n", "', 1)
        else:
            content = json.dumps(echo_criteria(text))
        model_response.choices[0].message.content = content
        model_response.model = f"fake/{model}"
        if model == "metered":
            from litellm.types.utils import Usage

            prompt_tokens = litellm.token_counter(model="gpt-4o-mini", messages=messages)
            completion_tokens = litellm.token_counter(model="gpt-4o-mini", text=content)
            model_response.usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                         total_tokens=prompt_tokens + completion_tokens)
        return model_response

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("model") == "slow":
            # Logged as sent, then answered after the delay: what a Ctrl-C in between must not lose.
            text = _message_text(kwargs["messages"])
            self._log("slow", text, kwargs.get("api_key"))
            await asyncio.sleep(delay())
            return self.completion(*args, **kwargs, waited=True, logged=True)
        return self.completion(*args, **kwargs)


_handler: Any = None


def handler() -> Any:
    """The one fake provider of this process, made on first use."""
    global _handler
    if _handler is None:
        from litellm.llms.custom_llm import CustomLLM

        _handler = type("FakeLLM", (FakeLLM, CustomLLM), {})()
    return _handler


def __getattr__(name: str) -> Any:
    if name == "HANDLER":  # tests read and reset its call counts
        return handler()
    raise AttributeError(name)


def register(registry: Any) -> None:
    registry.register_lazy_llm_provider("fake", handler)
