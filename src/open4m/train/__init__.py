"""Training: one engine (`engine.run`) and the tasks it runs — FourM pre-training (`tasks.fourm`),
tokenizer training (`tasks.tokenizer`) and encoder fine-tuning (`tasks.finetune`) — with the
optimizer, LR schedule, EMA, checkpoint, distributed and monitoring pieces they share."""
