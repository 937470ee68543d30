"""The Textual terminal app: one client of :class:`csassist.core.pipeline.Assistant`.

Imports core; core never imports this package (an import-linter contract and a test enforce it).
"""
