"""The headless engine: no Textual, no Rich, nothing from the UI package (import-linter and a test enforce it)."""
