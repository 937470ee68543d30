"""The app's widgets, one module each; they render state and post messages, never call the engine."""
