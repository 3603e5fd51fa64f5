"""Subcommands of ``rs-plugin`` that plugins add (hook ``rs_plugin_add_commands``), e.g. ``train``."""

from __future__ import annotations

import argparse
from typing import Protocol


class Command(Protocol):
    """A subcommand: its one-line ``help``, its arguments, and what it does. Errors a user can fix are raised as
    ``ValueError``, ``TypeError``, ``OSError`` or ``ImportError``: ``rs-plugin`` prints them as one line."""

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments to ``parser``."""

    def run(self, args: argparse.Namespace) -> None:
        """Run the subcommand with the parsed ``args``."""
