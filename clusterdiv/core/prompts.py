"""Prompt templates kept as versioned files.

A prompt is a YAML file (system text, user template, few-shot examples, the criteria it asks
for). Its identity is the sha256 of the file's bytes, not its name: two runs with the same file
name but edited contents never share cache entries.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from clusterdiv.core.errors import InputError

_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


def prompts_dir() -> Path:
    """The bundled prompts: inside the wheel when installed, the repository's `prompts/` otherwise."""
    package = Path(__file__).resolve().parents[1]  # clusterdiv/
    bundled = package / "_bundled_prompts"
    return bundled if bundled.is_dir() else package.parent / "prompts"


class CriterionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    description: str
    max_length: int = Field(default=48, ge=4, le=400)
    enum: list[str] | None = None


class FewShot(BaseModel):
    """One worked example: `text` fills `{{ text }}`; `variables` fill templates that take more than
    one variable (e.g. the naming prompt's lists of members and neighbours)."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    variables: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, str]


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    criteria: list[CriterionSpec] = Field(min_length=1)
    embed: list[str] = Field(min_length=1)
    system: str
    user: str
    few_shot: list[FewShot] = Field(default_factory=list)


def _template_line(source: str, key: str, template_line: int) -> int | None:
    """The prompt file's line of `template_line` (1-based) of the top-level YAML string `key`."""
    try:
        root = yaml.compose(source)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for k, v in root.value:
        if getattr(k, "value", None) == key and isinstance(v, yaml.ScalarNode):
            block = v.style in ("|", ">")  # the text starts on the line after the indicator
            return v.start_mark.line + 1 + int(block) + template_line - 1
    return None


def _check_templates(spec: PromptFile, source: str, path: Path) -> None:
    """Compile `system` and `user` now, so a Jinja typo is bad input (file and line) before any work."""
    for key in ("system", "user"):
        try:
            _JINJA.parse(getattr(spec, key))
        except jinja2.TemplateSyntaxError as exc:
            line = _template_line(source, key, exc.lineno or 1)
            where = f"{path}:{line}" if line is not None else str(path)
            raise InputError(f"{where}: Jinja syntax error in '{key}' (template line {exc.lineno}): "
                             f"{exc.message}") from exc


class PromptTemplate:
    """A loaded prompt file: renders chat messages and builds the pydantic schema of its answer."""

    def __init__(self, spec: PromptFile, *, source: str, content_hash: str):
        self.spec = spec
        self.source = source
        self.content_hash = content_hash
        names = {c.name for c in spec.criteria}
        unknown = [e for e in spec.embed if e not in names]
        if unknown:
            raise InputError(f"{source}: 'embed' names unknown criteria {unknown}; known: {sorted(names)}")
        for shot in spec.few_shot:
            missing = names - set(shot.output)
            if missing:
                raise InputError(f"{source}: few-shot example {shot.text[:40]!r} lacks {sorted(missing)}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> PromptTemplate:
        path = Path(path) if path is not None else prompts_dir() / "extract_criteria.yaml"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read prompt file {path}: {exc.strerror}") from exc
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
            spec = PromptFile.model_validate(data)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a valid YAML prompt file: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{path}: invalid prompt file at {where}: {first['msg']}") from exc
        _check_templates(spec, raw.decode("utf-8"), path)
        return cls(spec, source=str(path), content_hash=hashlib.sha256(raw).hexdigest())

    @property
    def criteria_names(self) -> list[str]:
        return [c.name for c in self.spec.criteria]

    @cached_property
    def output_model(self) -> type[BaseModel]:
        """Pydantic model of one answer; its JSON schema drives constrained decoding."""
        fields: dict[str, Any] = {}
        for c in self.spec.criteria:
            if c.enum:
                fields[c.name] = (Literal[tuple(c.enum)], Field(description=c.description))  # type: ignore[valid-type]
            else:
                fields[c.name] = (
                    str,
                    Field(min_length=1, max_length=c.max_length, description=c.description),
                )
        model = create_model(  # type: ignore[call-overload]
            "Criteria", __config__=ConfigDict(extra="forbid", str_strip_whitespace=True), **fields
        )
        return model

    def _render(self, template: str, **variables: Any) -> str:
        return _JINJA.from_string(template).render(criteria=self.spec.criteria, **variables).strip()

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        """System, few-shot turns, then the example last, so the shared prefix stays KV-cached."""
        messages = [{"role": "system", "content": self._render(self.spec.system)}]
        for shot in self.spec.few_shot:
            shot_vars = {"text": shot.text, **shot.variables}
            messages.append({"role": "user", "content": self._render(self.spec.user, **shot_vars)})
            messages.append({"role": "assistant", "content": json.dumps(shot.output)})
        messages.append({"role": "user", "content": self._render(self.spec.user, **variables)})
        return messages
