"""Reply drafts: prompts, the extractive answer, generator backends and where their models come from."""
