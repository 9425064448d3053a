"""From examples to modes: the stages, composed once.

`extract` (criteria from the LLM), `embed` (sentence vectors), `represent` (the vector per example:
text, criteria or both), `cluster` (vectors into modes), `scoring` (modes / samples, normalised,
with intervals) and `shares` (a batch's modes against a reference's). `run` is the run context
that owns the cache, progress and timers; `modespace` runs the stages over one or more named groups
at once, so every task above reads one `ModeSpace` instead of rebuilding it.
"""
