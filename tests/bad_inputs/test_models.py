"""Bad model files and folders given to the verbs and loaders that read a model."""

import pytest

from battery import Case


def _text_as_safetensors(world, user):
    (user / "model").mkdir()
    (user / "model" / "model.safetensors").write_text("not weights")
    (user / "model" / "config.json").write_text((world.model / "config.json").read_text())


CASES = [
    Case("model-missing", "Models and checkpoints", "a --model folder that does not exist",
         r"no FourM at .nowhere.*neither an existing file or folder",
         argv=lambda w, u: ["generate", "--model", "nowhere", "--input", f"rgb={w.photo}", "--target", "depth", "--out", "out"],
         process=True),
    Case("model-not-safetensors", "Models and checkpoints", "model.safetensors holding text",
         r"model\.safetensors",
         setup=_text_as_safetensors,
         argv=lambda w, u: ["generate", "--model", "model", "--input", f"rgb={w.photo}", "--target", "depth", "--out", "out"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)
