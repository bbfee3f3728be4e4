"""One module per CLI subcommand, each with `register(subparsers)`; see `open4m.cli`."""
