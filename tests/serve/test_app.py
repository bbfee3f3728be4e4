"""The running page driven through `gradio_client`: generate, bad inputs as messages, the server keeps serving."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gradio", reason="the serve page needs the demo extra: pip install 'open4m[demo]'")
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client comes with the demo extra")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

EMPTY = {"headers": ["a"], "data": []}


@pytest.fixture(scope="module")
def client(server):
    url, _ = server
    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def photo(studio, tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "scene.png"
    Image.fromarray(studio.example(3).rgb).save(path)
    return path


def call(client, photo, conditions=("rgb",), targets=("depth", "semseg", "caption"), *, boxes=EMPTY, guidance="1",
         caption=""):
    return client.predict(list(conditions), list(targets), handle_file(str(photo)), caption, boxes,
                          "#d04030", "", "", "", EMPTY, 4, 0.5, 0.0, guidance, 0, False, api_name="/generate")


def test_page_title_and_endpoints(server, client):
    import json
    import urllib.request

    url, _ = server
    config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
    assert config["title"].startswith("open4m")  # the browser test checks the page's title itself
    assert {"/generate", "/example", "/upload"} <= set(client.view_api(print_info=False, return_format="dict")
                                                       ["named_endpoints"])


def test_generate_endpoint_returns_images_and_texts(client, photo):
    gallery, texts, status = call(client, photo)
    assert [item["caption"] for item in gallery] == ["depth", "segmentation"]
    for item in gallery:
        assert np.asarray(Image.open(item["image"])).shape == (256, 256, 3)
    assert texts.startswith("caption:\n") and len(texts) > 20
    assert status.startswith("Generated 2 pictures and 1 texts in ")


@pytest.mark.parametrize("conditions, targets, kwargs, message", [
    ((), ("depth",), {}, "choose at least one condition"),
    (("rgb", "det"), ("depth",), dict(boxes={"headers": list("abcde"), "data": [[0.2, 0.2, 1.5, 0.6, "cube"]]}),
     "box 1 .* is outside the image"),
    (("rgb",), ("depth",), dict(guidance="loud"), "not a number"),
])
def test_bad_input_is_a_message_and_the_server_keeps_serving(client, photo, conditions, targets, kwargs, message):
    with pytest.raises(AppError, match=message):
        call(client, photo, conditions, targets, **kwargs)
    gallery, _, _ = call(client, photo, ("rgb",), ("normal",))  # still serving
    assert [item["caption"] for item in gallery] == ["normals"]


def test_upload_that_is_no_image_is_a_message(client, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_text("this is text, not a PNG")
    with pytest.raises(AppError, match="not an image file"):
        client.predict(handle_file(str(fake)), api_name="/upload")
    real = tmp_path / "real.png"
    Image.new("RGB", (100, 80), (200, 30, 30)).save(real)
    image, status = client.predict(handle_file(str(real)), api_name="/upload")  # the scene index is page state
    assert Image.open(image).size == (256, 256) and "uploaded photo" in status  # 64 px shown enlarged
