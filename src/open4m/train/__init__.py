"""Training: optimizers and schedules, loops for FourM and tokenizers, distributed helpers."""
