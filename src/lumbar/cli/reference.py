"""Commands about protocols and instruments: ``lumbar protocol ...``, ``lumbar instruments ...``.

They load the protocol and instrument models (pydantic) when they run, not when ``lumbar``
starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lumbar._summary import SummaryTable
from lumbar.cli._common import app, print_tables

__all__ = ["instruments_app", "protocol_app"]

protocol_app = typer.Typer(
    help="Check and show trial protocols.", no_args_is_help=True, rich_markup_mode=None
)
instruments_app = typer.Typer(
    help="List and show questionnaires (instruments).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(protocol_app, name="protocol")
app.add_typer(instruments_app, name="instruments")


# ---------------------------------------------------------------- protocol


@protocol_app.command("check")
def protocol_check(
    file: Annotated[Path, typer.Argument(help="The protocol YAML file to check.")],
) -> None:
    """Check a protocol file; print its summary, or every problem (exit 2)."""
    from lumbar.protocol import PROTOCOL_FORMAT, load_protocol
    from lumbar.protocol.summary import summarize_protocol

    protocol = load_protocol(file)
    typer.echo(
        f"{file}: valid lumbar protocol (format {PROTOCOL_FORMAT}), trial {protocol.id} "
        f"version {protocol.version}"
    )
    print_tables(summarize_protocol(protocol))


@protocol_app.command("show")
def protocol_show(
    protocol: Annotated[str, typer.Argument(help="A shipped protocol's name or a file path.")],
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print the protocol's YAML source instead.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the validated protocol as JSON instead.")
    ] = False,
) -> None:
    """Show a protocol: arms, schedule, eligibility, randomization, outcomes, analysis."""
    from lumbar.protocol import resolve_protocol, shipped_protocol_names, shipped_text
    from lumbar.protocol.summary import summarize_protocol

    loaded = resolve_protocol(protocol)
    if as_yaml:
        if protocol in shipped_protocol_names():
            text = shipped_text(protocol)
        else:
            text = Path(protocol).read_text(encoding="utf-8")
        sys.stdout.write(text)
        return
    if as_json:
        typer.echo(loaded.model_dump_json(indent=2, by_alias=True, exclude_defaults=True))
        return
    print_tables(summarize_protocol(loaded))


@protocol_app.command("list")
def protocol_list() -> None:
    """List the protocols that ship with lumbar."""
    from lumbar.protocol import shipped_protocol, shipped_protocol_names

    rows = []
    for name in shipped_protocol_names():
        shipped = shipped_protocol(name)
        rows.append((name, shipped.trial.title, shipped.version, shipped.content_hash[:12]))
    print_tables(
        [SummaryTable("Shipped protocols", ("name", "title", "version", "hash"), tuple(rows))]
    )


@protocol_app.command("schema")
def protocol_schema() -> None:
    """Print the JSON Schema of protocol files (for editors that validate YAML)."""
    from lumbar.protocol import Protocol

    schema = Protocol.model_json_schema(by_alias=True)
    typer.echo(json.dumps(schema, indent=2, sort_keys=True))


# ---------------------------------------------------------------- instruments


@instruments_app.command("list")
def instruments_list() -> None:
    """List the instruments lumbar ships."""
    from lumbar.instruments import INSTRUMENTS
    from lumbar.instruments.summary import list_instruments

    print_tables([list_instruments(INSTRUMENTS)])


@instruments_app.command("show")
def instruments_show(
    name: Annotated[str, typer.Argument(help="The instrument's name, e.g. rdq.")],
    wording: Annotated[
        Path | None,
        typer.Option(help="A wording file with the licensed item texts to show instead of labels."),
    ] = None,
) -> None:
    """Show an instrument: items, answers, scoring and missing-item rules, sources."""
    from lumbar.instruments import INSTRUMENTS, apply_wording, load_wording
    from lumbar.instruments.summary import summarize_instrument

    instrument = INSTRUMENTS.get(name)
    if wording is not None:
        instrument = apply_wording(instrument, load_wording(wording))
    print_tables(summarize_instrument(instrument))
