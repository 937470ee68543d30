"""The headless engine. Never imports textual, rich or csassist.ui (enforced by import-linter and a test)."""
