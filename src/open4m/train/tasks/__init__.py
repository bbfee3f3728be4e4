"""What the training engine runs: each task supplies its model, batches, loss, validation and export.

- `fourm`: masked multimodal pre-training and fine-tuning of a FourM (`open4m train`);
- `tokenizer`: VQ-VAE / DiVAE / MLP-VQ tokenizers from scratch (`open4m train-tokenizer`);
- `finetune`: the FourM encoder on classification, segmentation or depth (`open4m finetune`).
"""
