"""The engine's edges: where customer messages come from (demo, files, stdin, HTTP) and where replies go."""
