"""csassist: a keyboard-first terminal copilot for customer-service agents, fully local."""

__version__ = "0.1.0"
