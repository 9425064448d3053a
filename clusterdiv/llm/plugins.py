"""Plugin registration: the built-in local model and third-party/test plugins use the same path.

Like simonw/llm's plugin hooks, anything that wants to add an LLM provider (the bundled local
model, a company gateway, the fake model the tests use) registers a litellm custom handler here,
and anything that wants to add a set metric registers it here too (`register_metric`, which
:mod:`clusterdiv.metrics.registry` reads on first use; reports, history, `track` and `check` then know it).
Plugins are found through the `clusterdiv.plugins` entry-point group and through the
`CLUSTERDIV_PLUGINS` environment variable (comma-separated module names with a `register(registry)`
function), which is how the CLI tests inject a fake model into a subprocess.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from typing import Any

import clusterdiv.llm  # noqa: F401  (sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported)

PLUGINS_ENV_VAR = "CLUSTERDIV_PLUGINS"


class ProviderRegistry:
    """Holds the custom providers and mirrors them into litellm's `custom_provider_map`."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.fingerprinters: dict[str, Any] = {}
        self._lazy: dict[str, Any] = {}  # provider -> handler factory, run on first use (see handler_for)
        self.metrics: list[dict[str, Any]] = []  # plugin metrics, in registration order
        self.metric_sink: Any = None  # metrics.registry.register_metric, once the metric registry has loaded

    def register_llm_provider(self, name: str, handler: Any, fingerprint: Any = None) -> None:
        """Route `name/<model>` to `handler` (a litellm CustomLLM-compatible object).

        `fingerprint(model_suffix) -> str` optionally gives the model identity used in cache keys
        (e.g. including a weights hash). A handler that computes in this process (blocking, like the
        local model) may offer an `executor` (a `concurrent.futures.Executor`): clusterdiv then calls
        the sync `litellm.completion` on it instead of `litellm.acompletion`.
        """
        import litellm

        self.handlers[name] = handler
        if fingerprint is not None:
            self.fingerprinters[name] = fingerprint
        litellm.custom_provider_map = [
            entry for entry in litellm.custom_provider_map if entry["provider"] != name
        ] + [{"provider": name, "custom_handler": handler}]
        from litellm.utils import custom_llm_setup

        custom_llm_setup()

    def register_lazy_llm_provider(self, name: str, make_handler: Any, fingerprint: Any = None) -> None:
        """`register_llm_provider` with the handler made (and litellm imported) only when a call needs it."""
        self._lazy[name] = make_handler
        if fingerprint is not None:
            self.fingerprinters[name] = fingerprint

    def register_metric(self, name: str, compute: Any, *, group: str = "lexical", meaning: str,
                        direction: int = 1, value_range: tuple[float, float] | None = None) -> None:
        """Add a set metric: see :func:`clusterdiv.metrics.registry.register_metric`.

        This layer sits below the metrics and never imports them: the metric registry reads what
        was registered before it loaded (`metrics.registry.load_plugins`) and installs itself as
        `metric_sink` for what comes after; it checks the name and settings.
        """
        metric = {"name": name, "compute": compute, "group": group, "meaning": meaning, "direction": direction,
                  **({"value_range": value_range} if value_range is not None else {})}
        self.metrics.append(metric)
        if self.metric_sink is not None:
            self.metric_sink(**metric)

    def fingerprint(self, model: str) -> str:
        provider, _, suffix = model.partition("/")
        fingerprinter = self.fingerprinters.get(provider)
        return fingerprinter(suffix) if fingerprinter and suffix else model

    def handler_for(self, model: str) -> Any | None:
        """The custom handler of `model`'s provider (made now when registered lazily), or None."""
        provider = model.partition("/")[0]
        if provider in self._lazy and provider not in self.handlers:
            self.register_llm_provider(provider, self._lazy.pop(provider)())
        return self.handlers.get(provider)


_registry: ProviderRegistry | None = None


def get_registry() -> ProviderRegistry:
    """The process-wide registry, with the built-in and discovered plugins loaded once."""
    global _registry
    if _registry is None:
        _registry = ProviderRegistry()
        _load_plugins(_registry)
    return _registry


def _local_handler() -> Any:
    from clusterdiv.llm.local import LocalLlamaProvider

    return LocalLlamaProvider()


def _load_plugins(registry: ProviderRegistry) -> None:
    from clusterdiv.llm.local import local_model_fingerprint

    registry.register_lazy_llm_provider("local", _local_handler, local_model_fingerprint)
    for entry_point in entry_points(group="clusterdiv.plugins"):
        entry_point.load()(registry)
    for module_name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV_VAR, "").split(","))):
        importlib.import_module(module_name).register(registry)
