"""open4m side by side with the official 4M implementation (apple/ml-4m): speed, peak memory, same outputs.

The official code runs from its own checkout and virtual environment (DIR, made by
`../shared/reference/setup.sh GIT_DIR DIR` from a git copy of apple/ml-4m); nothing of it is
imported into open4m. This script prepares the inputs once per size with open4m — random-init 4M-7
SwiGLU no-bias weights in the release layout (seed 0), masked 4M-7 training batches (official
mixture, 128 input / 128 target tokens) and a seeded RGB image — then runs every measurement in
fresh processes, alternating open4m and the reference (A B A B ...), and keeps the best of the rounds:

- train: forward + backward + AdamW steps (lr 1e-4, betas 0.9/0.95, weight decay 0.05, no clipping,
  no gradient-norm logging), the same batches in the same order; samples/s of the fastest timed step and
  the process's peak resident set (max RSS). The reference steps through its own `create_optimizer`
  and `NativeScalerWithGradNormCount` (fp32: the scaler is off), decoder modality order shuffled by a
  seeded `random` (its Python >= 3.11 incompatibility patched in the process, not in the copy); open4m
  uses its documented settings (fused AdamW, row-sparse embedding gradients). `--memory lean` adds what
  `optim.state_dtype: bf16`, `optim.step_in_backward: true` and `train.release_memory: true` do in the
  engine: AdamW moments in bf16, each parameter updated inside the backward pass as soon as its gradient
  is complete (no gradient-norm summing: the engine sums it on logging steps only), and the heap's free
  pages handed back after the forward pass and halfway through the backward pass.
- generate: RGB -> tok_depth@224 by MaskGIT in 1 and 8 cosine steps, with and without guidance
  (scale 2 on the RGB condition), and a 32-token caption (greedy, autoregressive); ms per image,
  best of the repeats. The reference runs `GenerationSampler.generate` with schedules from
  `build_chained_generation_schedules`; open4m its `Sampler` (KV cache and speculative drafts on).

Everything is fp32 at temperature 0, so both sides must give the same tokens; the table says so per
case, and the training losses of both sides are compared step by step. `--precision bf16` runs open4m's
side in bfloat16 — training under autocast (fp32 master weights, optimizer and loss; the CPU's AMX /
AVX-512 bf16 units do the matrix products), generation with the model's weights in bf16 (open4m's
`dtype="bf16"`) — the reference staying at its CPU setting, fp32 (its autocast is CUDA only): the
table then gives the largest loss difference and the share of generated tokens equal to the
reference's instead of an exact match. The weights' caption head
gives the end-of-span token [S_2] a zero logit (its output row is zeroed), so random weights never
stop a caption early and both sides decode exactly 32 tokens.

    python benchmarks/vs_reference.py --reference /work/reference                # tiny + base
    python benchmarks/vs_reference.py --reference /work/reference --sizes tiny --rounds 2
    python benchmarks/vs_reference.py --ours-only --sizes tiny                   # open4m side only
    python benchmarks/vs_reference.py --reference /work/reference --precision bf16
    python benchmarks/vs_reference.py --reference /work/reference --sizes base --precision bf16 --memory lean

The last line is `ratios: train_speed=X train_memory=Y maskgit=Z maskgit_cfg=W ar=V` for the first
size given: open4m over the reference for speed (8-step MaskGIT for maskgit / maskgit_cfg), open4m's
peak RSS over the reference's for train_memory; `nan` where the reference was not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_step import SIZES, make_batches

SIDES = ("ours", "reference")
MASK_KEYS = ("tensor", "input_mask", "target_mask", "decoder_attention_mask")
TARGET, CAPTION = "tok_depth@224", "caption"
EOS = 6  # [S_2] in the official WordPiece vocabulary: ends a generated span
CAPTION_TOKENS = 32
GEN_CASES = ("maskgit-1", "maskgit-1 +cfg", "maskgit-8", "maskgit-8 +cfg", "ar-32")
TOKENIZER_JSON = "fourm/utils/tokenizer/trained/text_tokenizer_4m_wordpiece_30k.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gen_case(name: str) -> tuple[int, bool]:
    """(MaskGIT steps, guided) of a MaskGIT case name such as 'maskgit-8 +cfg'."""
    steps, _, guided = name.removeprefix("maskgit-").partition(" ")
    return int(steps), guided == "+cfg"


# ------------------------------------------------------------------------------------------
# Inputs, written once per size by open4m; both sides read the same files
# ------------------------------------------------------------------------------------------
def prepare(workdir: Path, size: str, args: argparse.Namespace) -> None:
    """Weights (release layout), training batches and the generation image for `size` under `workdir`."""
    import torch
    from safetensors.torch import save_file

    from open4m.modalities import FOURM_7
    from open4m.model import FourM, preset

    cfg = preset("base-swiglu_nobias", domains_in=list(FOURM_7), domains_out=[m for m in FOURM_7 if m != "rgb@224"],
                 **SIZES[size])
    torch.manual_seed(args.seed)
    model = FourM(cfg)
    with torch.no_grad():
        model.decoder_embeddings[CAPTION].to_logits.weight[EOS].zero_()
    model.save_file(workdir / "weights.safetensors", overwrite=True)
    del model
    batches = make_batches(args.warmup + args.steps, args.batch_size, args.seed)
    tensors, order = {}, []
    for i, batch in enumerate(batches):
        order.append(list(batch))
        for mod, entry in batch.items():
            for key in MASK_KEYS:
                if key in entry:
                    tensors[f"{i}/{mod}/{key}"] = entry[key].contiguous()
    save_file(tensors, str(workdir / "batches.safetensors"), metadata={"order": json.dumps(order)})
    rgb = torch.randn(args.gen_batch, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
    save_file({"rgb": rgb}, str(workdir / "image.safetensors"))


def load_batches(workdir: Path) -> list[dict]:
    from safetensors import safe_open

    with safe_open(str(workdir / "batches.safetensors"), "pt") as f:
        order = json.loads(f.metadata()["order"])
        keys = set(f.keys())
        return [{mod: {k: f.get_tensor(f"{i}/{mod}/{k}") for k in MASK_KEYS if f"{i}/{mod}/{k}" in keys}
                 for mod in mods} for i, mods in enumerate(order)]


def timed_steps(step, batches: list, warmup: int) -> tuple[float, list[float]]:
    """Run `step(batch) -> loss` over the batches; the fastest step after `warmup` (seconds), all losses.

    Every batch holds the same number of input and target tokens, so every step does the same work;
    the fastest one is the least disturbed by other jobs on a shared machine.
    """
    times, losses = [], []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        losses.append(step(batch))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return min(times), losses


def best_of(fn, reps: int) -> tuple[float, object]:
    """One warm-up call, then the best wall time (ms) of `reps` calls and the last result."""
    out = fn()
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best, out


# ------------------------------------------------------------------------------------------
# open4m side
# ------------------------------------------------------------------------------------------
def autocast(precision: str):
    """bfloat16 autocast on the CPU for `--precision bf16` training (the loss stays fp32: FourM computes it in fp32)."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def ours_train(workdir: Path, args: argparse.Namespace) -> dict:
    import torch

    from open4m.model import FourM
    from open4m.train.adamw import StepInBackward
    from open4m.train.memory import release_free_memory
    from open4m.train.optim import SparseGradientDensifier, build_adamw, parameter_groups

    model = FourM.from_pretrained(workdir / "weights.safetensors").train()
    model.set_sparse_embedding_gradients(True)
    lean = args.memory == "lean"
    opt = build_adamw(parameter_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                      state_dtype="bf16" if lean else "fp32")
    stepper = StepInBackward(opt, release_midway=True) if lean else None
    densify = SparseGradientDensifier()
    batches = load_batches(workdir)
    gen = torch.Generator().manual_seed(args.seed)
    start_mb = peak_rss_mb()

    def step(batch):
        with autocast(args.precision):
            loss, _ = model(batch, 128, 128, shuffle_decoder_modalities=True, generator=gen, validate=False)
        if lean:  # what optim.state_dtype: bf16, optim.step_in_backward and train.release_memory do in the engine
            release_free_memory()
            stepper.arm(track_norm=False)  # the engine sums the gradient norm on logging steps only
            loss.backward()
            stepper.finish()
        else:
            loss.backward()
            densify(model)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss.item()

    sec, losses = timed_steps(step, batches, args.warmup)
    return dict(step_s=sec, samples_s=args.batch_size / sec, peak_mb=peak_rss_mb(), start_mb=start_mb, losses=losses)


def ours_generate(workdir: Path, args: argparse.Namespace) -> dict:
    import torch
    from safetensors.torch import load_file

    from open4m.generation import Sampler, build_schedule
    from open4m.model import FourM

    # bf16 generation runs the model in bfloat16 (open4m's `dtype="bf16"`): decoding one token at a time
    # is bound by reading the weights, so halving their bytes is what pays; autocast would re-read fp32.
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    model = FourM.from_pretrained(workdir / "weights.safetensors", dtype=dtype).eval()
    sampler = Sampler(model)
    rgb = load_file(str(workdir / "image.safetensors"))["rgb"].to(dtype)
    cases = {}
    for name in GEN_CASES:
        if name.startswith("maskgit"):
            steps, guided = gen_case(name)
            schedule = build_schedule(f"rgb@224->{TARGET}", steps=steps, token_schedules="cosine", temps=0.0,
                                      cfg=args.cfg if guided else 1.0)
            target = TARGET
        else:
            schedule = build_schedule(f"rgb@224->{CAPTION}", tokens=CAPTION_TOKENS + 1, temps=0.0)
            target = CAPTION

        def run(schedule=schedule, target=target):
            with torch.inference_mode():
                return sampler.generate({"rgb@224": rgb}, schedule)[target]["tensor"]

        ms, out = best_of(run, args.reps)
        cases[name] = dict(ms=ms / len(rgb), tokens=out.tolist())
    return dict(cases=cases, peak_mb=peak_rss_mb())


# ------------------------------------------------------------------------------------------
# Reference side: runs in the reference's venv (torch, safetensors and fourm only, no open4m)
# ------------------------------------------------------------------------------------------
def reference_model(workdir: Path, seed: int):
    import random

    from safetensors import safe_open
    from safetensors.torch import load_file

    import fourm.models.fm as fm_mod
    from fourm.utils.checkpoint import safe_parse_metadata

    rng = random.Random(seed)
    # fm.py shuffles the decoder modalities with random.sample(dict.items(), k), which Python >= 3.11 rejects.
    fm_mod.random.sample = lambda population, k: rng.sample(list(population), k)
    path = str(workdir / "weights.safetensors")
    with safe_open(path, "pt") as f:
        config = safe_parse_metadata(f.metadata())
    model = fm_mod.FM(config=config)
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    if missing or unexpected:
        raise SystemExit(f"reference could not load the weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def reference_train(workdir: Path, args: argparse.Namespace) -> dict:
    from fourm.utils.native_scaler import NativeScalerWithGradNormCount
    from fourm.utils.optim_factory import create_optimizer

    model = reference_model(workdir, args.seed).train()
    opt_args = argparse.Namespace(opt="adamw", lr=1e-4, weight_decay=0.05, opt_eps=1e-8, opt_betas=[0.9, 0.95])
    opt = create_optimizer(opt_args, model)
    scaler = NativeScalerWithGradNormCount(enabled=False)  # run_training_4m.py: enabled only for float16
    batches = load_batches(workdir)
    start_mb = peak_rss_mb()

    def step(batch):
        loss, _ = model(batch, num_encoder_tokens=128, num_decoder_tokens=128, loss_type="mod")
        scaler(loss, opt, clip_grad=None, parameters=model.parameters(), compute_grad_norm=False)
        opt.zero_grad()
        return loss.item()

    sec, losses = timed_steps(step, batches, args.warmup)
    return dict(step_s=sec, samples_s=args.batch_size / sec, peak_mb=peak_rss_mb(), start_mb=start_mb, losses=losses)


def reference_generate(workdir: Path, args: argparse.Namespace) -> dict:
    import copy

    import torch
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    from fourm.data.modality_info import MODALITY_INFO
    from fourm.models.generate import (GenerationSampler, build_chained_generation_schedules,
                                       init_empty_target_modality, init_full_input_modality)

    model = reference_model(workdir, args.seed).eval()
    sampler = GenerationSampler(model)
    text_tokenizer = Tokenizer.from_file(TOKENIZER_JSON)
    rgb = load_file(str(workdir / "image.safetensors"))["rgb"]
    cases = {}
    for name in GEN_CASES:
        if name.startswith("maskgit"):
            steps, guided = gen_case(name)
            target, scheme, ntok, cfg = TARGET, "maskgit", 196, args.cfg if guided else 1.0
        else:
            target, scheme, ntok, steps, cfg = CAPTION, "autoregressive", CAPTION_TOKENS + 1, None, 1.0
        schedule = build_chained_generation_schedules(
            cond_domains=["rgb@224"], target_domains=[target], tokens_per_target=[ntok],
            autoregression_schemes=[scheme], decoding_steps=[steps], token_decoding_schedules=["cosine"],
            temps=[0.0], temp_schedules=["constant"], cfg_scales=[float(cfg)], cfg_schedules=["constant"],
            cfg_grow_conditioning=False)
        mod_dict = init_full_input_modality({"rgb@224": {"tensor": rgb}}, MODALITY_INFO, "rgb@224", "cpu")
        mod_dict = init_empty_target_modality(mod_dict, MODALITY_INFO, target, len(rgb), ntok, "cpu")

        def run(mod_dict=mod_dict, schedule=schedule, target=target):
            with torch.no_grad():
                out = sampler.generate(copy.deepcopy(mod_dict), schedule, text_tokenizer=text_tokenizer, seed=args.seed)
            return out[target]["tensor"]

        ms, out = best_of(run, args.reps)
        cases[name] = dict(ms=ms / len(rgb), tokens=out.tolist())
    return dict(cases=cases, peak_mb=peak_rss_mb())


CHILDREN = {("ours", "train"): ours_train, ("ours", "generate"): ours_generate,
            ("reference", "train"): reference_train, ("reference", "generate"): reference_generate}


# ------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------
def run_child(side: str, task: str, workdir: Path, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process of `side`'s interpreter; its JSON result."""
    flags = ["--child", side, "--task", task, "--workdir", str(workdir), "--threads", str(args.threads),
             "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
             "--reps", str(args.reps), "--cfg", str(args.cfg), "--seed", str(args.seed)]
    if side == "ours":
        flags += ["--precision", args.precision, "--memory", args.memory]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    if side == "ours":
        cmd, cwd = [sys.executable, __file__, *flags], None
    else:
        ref = args.reference
        cmd, cwd = [str(ref / "venv" / "bin" / "python"), str(Path(__file__).resolve()), *flags], ref
        env["PYTHONPATH"] = f"{ref / 'stubs'}{os.pathsep}{ref}"
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{side} {task} failed: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(size: str, args: argparse.Namespace, sides: tuple[str, ...]) -> dict:
    """{side: {"train": best, "generate": best}} for one size, alternating sides round by round."""
    with tempfile.TemporaryDirectory(prefix=f"vs_reference_{size}_") as tmp:
        workdir = Path(tmp)
        prepare(workdir, size, args)
        results: dict = {side: {} for side in sides}
        loads = []
        for task in ("train", "generate"):
            for _ in range(args.rounds):
                for side in sides:
                    loads.append(os.getloadavg()[0])
                    r = run_child(side, task, workdir, args)
                    results[side][task] = keep_best(results[side].get(task), r, task)
                    print(f"  {size} {task} {side}: {summary(r, task)}", file=sys.stderr, flush=True)
        results["load"] = (min(loads), max(loads))
        return results


def keep_best(old: dict | None, new: dict, task: str) -> dict:
    """Fastest run of a task (per generation case), the lowest peak memory seen, the outputs of the first run."""
    if old is None:
        return new
    if task == "train":
        best = dict(new if new["step_s"] < old["step_s"] else old)
        best["peak_mb"] = min(old["peak_mb"], new["peak_mb"])
        best["losses"] = old["losses"]
        return best
    cases = {n: dict(old["cases"][n], ms=min(old["cases"][n]["ms"], new["cases"][n]["ms"])) for n in old["cases"]}
    return dict(cases=cases, peak_mb=min(old["peak_mb"], new["peak_mb"]))


def summary(r: dict, task: str) -> str:
    if task == "train":
        return f"{r['samples_s']:.2f} samples/s, peak {r['peak_mb']:.0f} MB, first loss {r['losses'][0]:.5f}"
    return ", ".join(f"{n} {c['ms']:.0f} ms" for n, c in r["cases"].items()) + f", peak {r['peak_mb']:.0f} MB"


def ratio(ours: float, ref: float | None) -> float:
    return ours / ref if ref else math.nan


def rows_of(size: str, res: dict) -> list[dict]:
    """Table rows: (size, measure, ours, reference, ratio, same outputs)."""
    ours, ref = res["ours"], res.get("reference")
    rows = []
    tr, rtr = ours["train"], ref["train"] if ref else None
    loss_diff = max(abs(a - b) for a, b in zip(tr["losses"], rtr["losses"])) if rtr else None
    same = f"max |dloss| {loss_diff:.1e}" if rtr else "-"
    rows.append(dict(size=size, what="train samples/s", ours=tr["samples_s"], ref=rtr and rtr["samples_s"],
                     ratio=ratio(tr["samples_s"], rtr and rtr["samples_s"]), same=same))
    rows.append(dict(size=size, what="train peak RSS MB", ours=tr["peak_mb"], ref=rtr and rtr["peak_mb"],
                     ratio=ratio(tr["peak_mb"], rtr and rtr["peak_mb"]), same=""))
    for name in GEN_CASES:
        o = ours["generate"]["cases"][name]
        r = ref["generate"]["cases"][name] if ref else None
        same = "-" if r is None else agreement(o["tokens"], r["tokens"])
        rows.append(dict(size=size, what=f"{name} ms/img", ours=o["ms"], ref=r and r["ms"],
                         ratio=ratio(r["ms"], o["ms"]) if r else math.nan, same=same))
    return rows


def agreement(ours: list, ref: list) -> str:
    """'yes' when the generated tokens are identical, else the share of positions that agree."""
    if ours == ref:
        return "yes"
    a = [t for row in ours for t in row]
    b = [t for row in ref for t in row]
    same = sum(x == y for x, y in zip(a, b))
    return f"{same / max(len(a), len(b)):.1%} of tokens"


def table(rows: list[dict]) -> str:
    head = f"{'size':<5} {'measure':<22} {'open4m':>10} {'reference':>10} {'ratio':>7}  same outputs"
    lines = [head, "-" * len(head)]
    for r in rows:
        ref = f"{r['ref']:>10.2f}" if r["ref"] is not None else f"{'-':>10}"
        lines.append(f"{r['size']:<5} {r['what']:<22} {r['ours']:>10.2f} {ref} {r['ratio']:>6.2f}x  {r['same']}")
    return "\n".join(lines)


def ratios_line(rows: list[dict], size: str) -> str:
    by = {r["what"]: r["ratio"] for r in rows if r["size"] == size}
    return (f"ratios: train_speed={by['train samples/s']:.2f} train_memory={by['train peak RSS MB']:.2f} "
            f"maskgit={by['maskgit-8 ms/img']:.2f} maskgit_cfg={by['maskgit-8 +cfg ms/img']:.2f} "
            f"ar={by['ar-32 ms/img']:.2f}")


def check_reference(parser: argparse.ArgumentParser, ref: Path | None, ours_only: bool) -> None:
    if ours_only:
        return
    if ref is None:
        parser.error("--reference DIR is required (the official code set up by ../shared/reference/setup.sh "
                     "GIT_DIR DIR), or pass --ours-only")
    for need in ("venv/bin/python", "fourm/models/fm.py", "stubs/sitecustomize.py", TOKENIZER_JSON):
        if not (ref / need).exists():
            parser.error(f"{ref} is not a reference set up by setup.sh ({need} is missing); run "
                         f"`bash ../shared/reference/setup.sh GIT_DIR {ref}` first")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Run from the open4m environment; the reference runs in DIR/venv.")
    p.add_argument("--reference", type=Path, help="the reference's folder (setup.sh DEST)")
    p.add_argument("--ours-only", action="store_true", help="measure open4m only (ratios print as nan)")
    p.add_argument("--sizes", default="tiny,base", help="comma-separated: tiny (256, 4+4), base (768, 12+12)")
    p.add_argument("--rounds", type=int, default=3, help="processes per side and task, alternating (best kept)")
    p.add_argument("--steps", type=int, default=4, help="timed training steps per process")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps before them")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--gen-batch", type=int, default=1, help="images per generation call")
    p.add_argument("--reps", type=int, default=3,
                   help="timed calls per generation case and process (after one warm-up)")
    p.add_argument("--cfg", type=float, default=2.0, help="guidance scale of the +cfg cases")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="open4m's compute: fp32, or bf16 autocast (the reference stays fp32, its CPU setting)")
    p.add_argument("--memory", choices=("default", "lean"), default="default",
                   help="open4m's training memory: default (fp32 AdamW moments, update after the backward pass) or "
                        "lean (bf16 moments, updates inside the backward pass, freed memory handed back)")
    p.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--task", choices=("train", "generate"), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(CHILDREN[args.child, args.task](args.workdir, args)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        p.error(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    if min(args.rounds, args.steps, args.reps, args.batch_size, args.gen_batch, args.threads) < 1 or args.warmup < 0:
        p.error("--rounds, --steps, --reps, --batch-size, --gen-batch and --threads must be >= 1, --warmup >= 0")
    check_reference(p, args.reference, args.ours_only)
    if args.reference is not None:
        args.reference = args.reference.resolve()
    sides = ("ours",) if args.ours_only else SIDES
    import torch

    rows, loads = [], []
    for size in sizes:
        res = measure(size, args, sides)
        loads.extend(res["load"])
        rows.extend(rows_of(size, res))
    print(f"open4m vs official 4M (apple/ml-4m) | 4M-7 SwiGLU no-bias, random init (seed {args.seed}), CPU, open4m "
          f"{args.precision} {args.memory} memory / reference fp32, "
          f"{args.threads} threads, torch {torch.__version__} | train: batch {args.batch_size}, 128 in / 128 out "
          f"tokens, best of {args.steps} steps after {args.warmup} | generate: batch {args.gen_batch}, temperature 0, "
          f"cfg {args.cfg:g}, best of {args.reps} | best of {args.rounds} alternating processes | "
          f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    print(table(rows))
    print("ratio: open4m over reference for speed (samples/s, or reference ms / open4m ms), "
          "open4m over reference for peak RSS")
    print(ratios_line(rows, sizes[0]))


if __name__ == "__main__":
    main()
