"""Tokenizers: every 4M modality to discrete tokens and back."""
