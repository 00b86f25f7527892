"""``suite convert-sequences``: the Beauty/Sports/Yelp text format, or a ``user,item,timestamp`` CSV, to RecBole atomic files.

Bad input (a missing or undecodable file, a malformed line, a name RecBole cannot use, an
output folder that cannot be written) is one line on stderr and exit code 2, like every
other ``suite`` command; a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import sys

import click

from scenarios.recsys.convert import convert_sequences
from suite.errors import SuiteError

EXIT_USER_ERROR = 2


@click.command("convert-sequences")
@click.argument("source")
@click.option("--name", default=None, help="dataset name (default: the file's stem), e.g. Beauty")
@click.option("--out", "out_dir", default="data", show_default=True, help="folder that receives <name>/<name>.inter")
def convert_sequences_command(source: str, name: str | None, out_dir: str) -> None:
    """Convert SOURCE into <out>/<name>/<name>.inter.

    SOURCE holds one line per user ('user item1 item2 ...'), or is a .csv with user, item and timestamp columns.
    """
    try:
        target = convert_sequences(source, out_dir, name)
    except SuiteError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USER_ERROR)
    click.echo(f"wrote {target} (use it with scenario: {{name: recbole, path: {target.parent}}})")
