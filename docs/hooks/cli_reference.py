"""mkdocs hook: the CLI reference, rendered at build time from the typer app itself.

docs/cli.md holds `<!-- cli-reference -->`; this hook replaces it with every command's usage, help
and options, read from `typer.main.get_command(app)`: the click command the console script runs.
A reference generated from the app cannot list an option the CLI lacks or miss one it gained.
Typer ships its own copy of click (typer 0.29: `typer._click`), so the commands are walked by
click's interface (`context_class`, `list_commands`, `param_type_name`), not by click's classes.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _command(cmd: Any, ctx: Any, level: int) -> list[str]:
    path = ctx.command_path
    out = [f"{'#' * level} `{path}`", ""]
    if cmd.help:
        out += [_escape(cmd.help.split("\f")[0].strip()), ""]
    out += ["```text", cmd.get_usage(ctx).strip(), "```", ""]
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option"]
    if arguments:
        out += ["Arguments:", ""]
        for arg in arguments:
            required = "required" if arg.required else "optional"
            out.append(f"- `{(arg.metavar or arg.name or '').upper()}` ({required}): "
                       f"{_escape(getattr(arg, 'help', None) or '')}".rstrip(": "))
        out.append("")
    if options:
        out += ["Options:", ""]
        for opt in options:
            record = opt.get_help_record(ctx)
            if record is None:
                continue
            names, help_text = record
            out.append(f"- `{names}`" + (f": {_escape(help_text)}" if help_text else ""))
        out.append("")
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _command(sub, sub.context_class(sub, info_name=name, parent=ctx), level + 1)
    return out


def render() -> str:
    """The whole CLI as markdown: the root command, then each subcommand in registration order."""
    import typer.main

    from clusterdiv.cli import app

    root = typer.main.get_command(app)
    return "\n".join(_command(root, root.context_class(root, info_name="clusterdiv"), 2))


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 (mkdocs' hook signature)
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown
