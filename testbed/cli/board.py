"""`testbed board …`: inspect and control a board's DVFS state (being written)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect and set CPU/GPU frequencies, restore the saved state, emulate a board.")
