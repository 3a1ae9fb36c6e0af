"""Fine-tuning on the user's own pairs (sentence-transformers trainers; the ``train`` extra)."""
