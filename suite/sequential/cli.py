"""``suite convert-sequences``: the Beauty/Sports/Yelp text format to RecBole atomic files."""

from __future__ import annotations

import click

from scenarios.recsys.convert import convert_sequences


@click.command("convert-sequences")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="dataset name (default: the file's stem), e.g. Beauty")
@click.option("--out", "out_dir", default="data", show_default=True, help="folder that receives <name>/<name>.inter")
def convert_sequences_command(source: str, name: str | None, out_dir: str) -> None:
    """Convert SOURCE (one line per user: 'user item1 item2 ...') into <out>/<name>/<name>.inter."""
    target = convert_sequences(source, out_dir, name)
    click.echo(f"wrote {target} (use it with scenario: {{name: recbole, path: {target.parent}}})")
