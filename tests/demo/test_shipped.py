"""The model shipped inside the package: present, small, documented, loadable, and as good as its card says."""

import json

import pytest

from open4m.sources.world import SHIPPED, bundle_missing

pytestmark = pytest.mark.skipif(bool(bundle_missing(SHIPPED)), reason="no world model shipped in src/open4m/assets")


def test_shipped_weights_fit_the_size_budget():
    total = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert total <= 25 * 2**20, f"assets hold {total / 2**20:.1f} MB, over the 25 MB budget"



def test_shipped_card_carries_the_description_metrics_and_notes():
    card = (SHIPPED / "README.md").read_text()
    metrics = json.loads((SHIPPED / "world.json").read_text())["eval"]["metrics"]
    scenes = json.loads((SHIPPED / "world.json").read_text())["train_scenes"]
    assert "It is a toy" in card and f"{scenes} scenes of the `train` split" in card
    interval = json.loads((SHIPPED / "world.json").read_text())["eval"]["intervals"]["depth"]
    assert (f"| depth | abs_rel | {metrics['depth']['model']['abs_rel']:.4g} "
            f"[{interval['low']:.4g}, {interval['high']:.4g}] (baseline") in card
    assert "Multitask vs single-task specialists at equal compute" in card and "| rgb->semseg | semseg | miou |" in card
    assert "FourM training loss" in card and "What the metrics mean" in card


def test_shipped_model_loads_and_predicts_depth():
    import numpy as np

    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.eval.models import EvalModel

    model = EvalModel.load()
    scene = generate_sample(seed_for("test", 0), model.image_size)
    depth = model.image("depth", {model.rgb: scene["rgb"][None]})
    valid = scene["depth"] > 0
    assert np.mean(np.abs(depth[0][valid] - scene["depth"][valid]) / scene["depth"][valid]) < 0.5


@pytest.mark.slow
def test_shipped_model_reproduces_its_card_metrics():
    from open4m.eval.runner import HEADLINE, evaluate, load_samples

    from open4m.eval.models import EvalModel

    card = json.loads((SHIPPED / "world.json").read_text())["eval"]
    model = EvalModel.load(SHIPPED)  # rendered val scenes, their captions in the order the model was trained on
    samples = load_samples("world:64", limit=card["scenes"], split=card["split"], caption_order=model.caption_order)
    result = evaluate(model, samples, ["depth", "normal", "semseg", "caption"], batch_size=16, progress=False)
    for task, res in result.metrics.items():
        key, _ = HEADLINE[task]
        assert res["model"][key] == pytest.approx(card["metrics"][task]["model"][key], rel=1e-3)
