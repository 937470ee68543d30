"""Learning from agents: the feedback log, fine-tuning (intent encoder, LoRA), evaluation metrics, stats."""
