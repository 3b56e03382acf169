"""CLI subcommands: each module here exposes ``register(subparsers)`` and is found by the CLI."""
