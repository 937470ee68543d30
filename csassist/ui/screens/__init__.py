"""Modal and full screens: help, KB search, reject reason, intent correction, stats."""
