"""The command line and composition root: the one place that wires the platform adapters to
the core (`python -m bot` and the `gemini-bot` script run it)."""
