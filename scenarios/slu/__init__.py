"""Spoken language understanding scenarios: the embedded spoken-commands corpus, FSC, SLURP."""
