"""LLM access: litellm for every model, with the embedded local model as a litellm custom provider."""

from __future__ import annotations

import os

# litellm fetches a remote cost map at import unless told otherwise; we must work offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEFAULT_LLM = "local/smollm2"
