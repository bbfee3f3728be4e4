"""FourM's forward and loss compile into one graph (`fullgraph=True`): no value read breaks it."""

import torch

from fourm_batches import random_batch
from open4m.model import FourM, FourMConfig, compile_model

MODS = ["rgb@224", "tok_depth@224", "caption"]


def _model() -> FourM:
    torch.manual_seed(0)
    return FourM(FourMConfig(domains_in=MODS, domains_out=MODS[1:], dim=64, encoder_depth=1, decoder_depth=1,
                             num_heads=2))


def test_forward_and_loss_trace_as_one_graph_with_the_eager_loss_and_gradients():
    model = _model()
    batch = random_batch(MODS)
    eager = model(batch, 64, 48)
    eager.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    # The "eager" backend runs what TorchDynamo traced: any graph break raises under fullgraph=True.
    compiled = compile_model(model, fullgraph=True, backend="eager")
    out = compiled(batch, 64, 48)
    torch.testing.assert_close(out.loss, eager.loss)
    for name in eager.per_modality:
        torch.testing.assert_close(out.per_modality[name], eager.per_modality[name])
    out.loss.backward()
    for name, grad in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, msg=name)


def test_a_modality_without_targets_gives_zero_loss_and_keeps_its_head_in_the_graph():
    model = _model()
    batch = random_batch(MODS)
    batch["caption"]["target_mask"] = torch.ones_like(batch["caption"]["target_mask"])  # nothing to predict
    out = model(batch, 64, 48)
    assert out.per_modality["caption"].item() == 0.0
    assert int(out.num_targets["caption"]) == 0
    torch.testing.assert_close(out.loss, out.per_modality["tok_depth@224"])  # the mean over present ones
    out.loss.backward()
    head = model.decoder_embeddings["caption"].to_logits.weight
    assert head.grad is not None and float(head.grad.abs().sum()) == 0.0
