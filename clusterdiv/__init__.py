"""clusterdiv: measure the diversity of text datasets by LLM semantic clustering."""

__version__ = "0.1.0"
