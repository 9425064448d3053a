"""CLI command modules beyond `score`/`metrics`/`cache`.

Each module here defines `register(app: typer.Typer) -> None`; `clusterdiv.cli` discovers and
registers them all, so a feature adds its commands in its own module without editing the CLI core.
"""
