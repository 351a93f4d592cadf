"""Controller side of the device agent: the HTTP client used by experiments and the CLI."""
