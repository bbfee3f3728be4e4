"""Generation speed: MaskGIT RGB -> tok_depth and autoregressive RGB -> caption, ours vs the official algorithm.

Random-init 4M-7 SwiGLU no-bias models (tiny: 256 wide, 4+4 layers; base: 768, 12+12), fp32 CPU.
Every case runs twice in the same process: with `open4m.generation.Sampler`, and with a faithful
re-implementation of the official algorithm on the same model (guidance as two serial passes,
autoregressive decoding re-running the decoder over the whole prefix for every token, and
`torch.nn.Linear` everywhere, as the official code has). Both give identical tokens at
temperature 0 (checked here), so the ratio measured in one run is the speed-up; the official
figures from issue 6 are printed beside for the order of magnitude. Peak memory is the process's
peak resident set during the case (reset before each case).

The autoregressive case is also run without speculative guesses (`draft_tokens=0`) and, on top of
that, with `torch.nn.Linear` instead of open4m's few-row `Linear`, so each gain shows on its own.
Random-init models repeat tokens far more than trained ones, which flatters the guesses: see
docs/generation.md for their effect on a trained model.

    python benchmarks/generation.py                    # tiny + base, 2 threads
    python benchmarks/generation.py --sizes tiny --repeats 3 --cases ar
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time

import torch

SIZES = {
    "tiny": dict(dim=256, encoder_depth=4, decoder_depth=4, num_heads=4),
    "base": dict(dim=768, encoder_depth=12, decoder_depth=12, num_heads=12),
}
# Official sampler, this machine class (2 cores, fp32, torch 2.13, random weights), ms per image (issue 6).
OFFICIAL_MS = {
    ("tiny", "maskgit-1", 1): 57, ("tiny", "maskgit-1", 4): 54, ("tiny", "maskgit-8", 1): 360,
    ("tiny", "maskgit-8", 4): 347, ("tiny", "ar-32", 1): 332,
    ("base", "maskgit-1", 1): 519, ("base", "maskgit-1", 4): 487, ("base", "maskgit-8", 1): 4214,
    ("base", "maskgit-8", 4): 3916, ("base", "ar-32", 1): 3822,
}


def peak_rss_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


# ------------------------------------------------------------------------------------------
# The official algorithm, on our model's public pieces (no batching of guidance, no KV cache)
# ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def plain_linear(model):
    """Run `model` with torch.nn.Linear layers (x @ Wᵀ for every row count), as the official code does."""
    from open4m.model.layers import Linear

    swapped = [m for m in model.modules() if type(m) is Linear]
    for m in swapped:
        m.__class__ = torch.nn.Linear
    try:
        yield
    finally:
        for m in swapped:
            m.__class__ = Linear


def official_parallel_step(sampler, mod_dict, step) -> None:
    from open4m.generation.placeholders import blank

    model, name = sampler.model, step.target
    entry = mod_dict[name]
    order = torch.sort(entry["target_mask"].to(torch.uint8), dim=1, stable=True).indices
    order = order[:, :int((~entry["target_mask"][0]).sum())]
    dicts = [mod_dict]
    if step.guided:
        dicts.append({n: blank(n, e) if n in step.cfg_conditions else e for n, e in mod_dict.items()})
    logits = []
    for d in dicts:  # one full encoder-decoder pass per dict, one after the other
        context = model.encode(model.select_encoder_tokens(d))
        emb = model.decoder_embeddings[name].embed(d[name])[1]
        emb = torch.gather(emb, 1, order[..., None].expand(-1, -1, emb.shape[-1]))
        logits.append(model.logits(name, model.decode(model.mask_token + emb, context, None)))
    out = logits[0] if len(logits) == 1 else logits[1] + (logits[0] - logits[1]) * step.cfg_scale
    ids = out.argmax(-1)  # temperature 0: confidence 1 everywhere, topk keeps the first positions
    best = torch.topk(torch.ones(ids.shape), step.num_tokens, dim=-1).indices
    sampler._commit(entry, order.gather(1, best), ids.gather(1, best))


def official_autoregressive(sampler, mod_dict, step) -> torch.Tensor:
    model, name = sampler.model, step.target
    entry, module = mod_dict[name], model.decoder_embeddings[name]
    context = model.encode(model.select_encoder_tokens(mod_dict))
    n = int((~entry["target_mask"][0]).sum())
    emb = module.embed(entry)[1][:, 1:n + 1]
    out, stop = entry["tensor"][:, 1:2], entry["tensor"][:, n:n + 1]
    for _ in range(n):
        k = out.shape[1]
        causal = torch.ones(k, k, dtype=torch.bool).triu(1).expand(out.shape[0], k, k)
        hidden = model.decode(module.token_emb(out) + emb[:, :k], context, causal)
        logits = model.logits(name, hidden)  # the official code projects every position, then keeps the last
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        if bool((out == stop).any(dim=1).all()):
            break
    return out


# ------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------
def measure(ours, official, repeats: int) -> tuple[dict, object, object]:
    """Peak RSS of one run each (which also warms up), then best-of-`repeats` wall times.

    The two implementations alternate run by run, so load from other processes on a shared
    machine hits both alike and the ratio stays meaningful.
    """
    out = {}
    reset_peak_rss()
    a = ours()
    out["mem"] = peak_rss_mb()
    reset_peak_rss()
    b = official()
    out["mem_ref"] = peak_rss_mb()
    best = {"ours": float("inf"), "ref": float("inf")}
    for _ in range(repeats):
        for key, fn in (("ours", ours), ("ref", official)):
            t0 = time.perf_counter()
            fn()
            best[key] = min(best[key], (time.perf_counter() - t0) * 1000)
    return {**out, **best}, a, b


def run_size(size: str, repeats: int, cfg_scale: float, cases: set[str]) -> list[dict]:
    from open4m.generation import Sampler, build_schedule
    from open4m.modalities import FOURM_7
    from open4m.model import FourM, preset

    torch.manual_seed(0)
    cfg = preset("base-swiglu_nobias", domains_in=list(FOURM_7), domains_out=[m for m in FOURM_7 if m != "rgb@224"],
                 **SIZES[size])
    model = FourM(cfg).eval()
    sampler = Sampler(model)
    rows = []
    for batch in (1, 4) if "maskgit" in cases else ():
        rgb = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        for steps in (1, 8):
            for guided in (False, True):
                schedule = build_schedule("rgb@224->tok_depth@224", steps=steps, temps=0.0,
                                          cfg=cfg_scale if guided else 1.0)

                def ours():
                    return sampler.generate({"rgb@224": rgb}, schedule)["tok_depth@224"]["tensor"]

                def official():
                    with torch.no_grad(), plain_linear(model):
                        mod_dict = sampler.prepare({"rgb@224": rgb}, schedule)
                        for step in schedule:
                            official_parallel_step(sampler, mod_dict, step)
                        return mod_dict["tok_depth@224"]["tensor"]

                rows.append(case(size, f"maskgit-{steps}", batch, guided, ours, official, repeats))
    if "ar" not in cases:
        return rows
    rgb = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    schedule = build_schedule("rgb@224->caption", tokens=33, temps=0.0)

    def ours_ar(which=sampler):
        out = which.generate({"rgb@224": rgb}, schedule)["caption"]
        return out["tensor"][0][~out["input_mask"][0]]

    def no_drafts():
        return ours_ar(Sampler(model, draft_tokens=0))

    def no_drafts_nn_linear():
        with plain_linear(model):
            return no_drafts()

    def official_ar():
        with torch.no_grad(), plain_linear(model):
            out = official_autoregressive(sampler, sampler.prepare({"rgb@224": rgb}, schedule), schedule.steps[0])
        tokens = out[0, 1:].tolist()
        return torch.tensor(tokens[:tokens.index(6)] if 6 in tokens else tokens)

    rows.append(case(size, "ar-32", 1, False, ours_ar, official_ar, repeats))
    rows.append(case(size, "ar-32", 1, False, no_drafts, official_ar, repeats, variant=" no-draft"))
    rows.append(case(size, "ar-32", 1, False, no_drafts_nn_linear, official_ar, repeats, variant=" no-draft,nn.Lin"))
    return rows


def case(size, name, batch, guided, ours, official, repeats, variant="") -> dict:
    times, a, b = measure(ours, official, repeats)
    per = batch if name.startswith("maskgit") else 1
    row = dict(size=size, case=name + (" +cfg" if guided else "") + variant, batch=batch, ours=times["ours"] / per,
               ref=times["ref"] / per, mem=times["mem"], mem_ref=times["mem_ref"], same=bool(torch.equal(a, b)),
               official=OFFICIAL_MS.get((size, name, batch)) if not guided else None,
               tokens=int(a.numel()) if name.startswith("ar") else None)
    print(fmt(row), flush=True)
    return row


HEADER = (f"{'size':5} {'case':22} {'batch':>5} {'ours ms/img':>12} {'official-alg':>13} {'speed-up':>9} "
          f"{'issue fig.':>10} {'peak MB':>8} {'ref MB':>7} {'same':>5}")


def fmt(r: dict) -> str:
    off = f"{r['official']:.0f}" if r["official"] else "-"
    extra = f"  ({r['tokens']} tokens)" if r["tokens"] is not None else ""
    return (f"{r['size']:5} {r['case']:22} {r['batch']:>5} {r['ours']:>12.1f} {r['ref']:>13.1f} "
            f"{r['ref'] / r['ours']:>8.2f}x {off:>10} {r['mem']:>8.0f} {r['mem_ref']:>7.0f} {str(r['same']):>5}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per case (best is reported)")
    parser.add_argument("--cfg", type=float, default=2.0, help="guidance scale of the +cfg cases")
    parser.add_argument("--cases", default="maskgit,ar", help="which cases: maskgit, ar or both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32 CPU, random-init 4M-7 SwiGLU no-bias models; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("official-alg = the official sampler's algorithm on the same model, same run; issue fig. = issue 6 table")
    print(HEADER)
    for size in args.sizes.split(","):
        run_size(size.strip(), args.repeats, args.cfg, set(args.cases.split(",")))


if __name__ == "__main__":
    main()
