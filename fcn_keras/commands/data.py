"""`fcn-keras` subcommands of the data group (see `fcn_keras/commands/__init__.py`)."""

__all__ = ["register"]


def register(subparsers):
    """Add this group's subcommands to the `fcn-keras` parser."""
