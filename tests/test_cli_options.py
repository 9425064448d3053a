"""The option groups of cli/options.py: declared once, spread into each command's flags, one object back."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from clusterdiv.cli.common import Seed, TextField
from clusterdiv.cli.options import OptionGroup, ScoreOptions, shared_options, vary


@dataclasses.dataclass(frozen=True)
class Pair(OptionGroup):
    seed: Seed = 0
    text_field: TextField = None


def test_a_group_becomes_flags_and_comes_back_as_one_object_with_omitted_options_at_their_defaults():
    seen = []

    @shared_options
    def command(name: Annotated[str, typer.Argument()], *, opts: Annotated[Pair, vary("text_field")]) -> None:
        seen.append((name, opts))

    assert list(inspect.signature(command).parameters) == ["name", "seed"]
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)  # two commands, so typer keeps `command` a subcommand
    result = CliRunner().invoke(app, ["command", "x", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert seen == [("x", Pair(seed=7, text_field=None))]
    assert CliRunner().invoke(app, ["command", "x", "--text-field", "t"]).exit_code == 2  # omitted: no such flag


def test_a_group_option_declared_twice_or_an_unknown_omission_fails_at_definition():
    with pytest.raises(TypeError, match="declared twice"):
        @shared_options
        def twice(*, seed: Seed = 0, opts: Pair) -> None: ...
    with pytest.raises(TypeError, match="no option"):
        @shared_options
        def unknown(*, opts: Annotated[Pair, vary("nope")]) -> None: ...


def test_score_check_compare_and_explore_share_the_score_options():
    from clusterdiv.cli import app

    command = typer.main.get_command(app)
    group = {f.name for f in dataclasses.fields(ScoreOptions)}
    taken = {name: {p.name for p in command.commands[name].params} & group
             for name in ("score", "check", "compare", "explore")}
    assert taken["score"] == group
    assert taken["check"] == group - {"label_field"}
    # compare and explore have their own --reference (and compare its own --sample) and take no
    # --api-key or --input-format, as before the groups; nor --sample-width (compare scores at one common
    # size, explore every example), nor --reference-label-field (no coverage by label there); --label-field
    # gives their modes' labels and purity (issue 32)
    assert taken["compare"] == taken["explore"] == group - {"api_key", "input_format", "sample_width",
                                                            "reference_label_field"}
    helps = {name: next(p.help for p in command.commands[name].params if p.name == "sample")
             for name in ("score", "compare", "explore")}
    from clusterdiv.cli.common import Sample

    assert helps == {"score": Sample.__metadata__[0].help,
                     "compare": "Common sample size (default: the smallest batch's)",
                     "explore": "Explore a seeded random sample of N examples"}
