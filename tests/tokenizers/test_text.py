import json

import pytest
import torch

from open4m.tokenizers.text import COCO_CLASSES, TextTokenizer

CORPUS = ["a man riding a horse on a beach", "two dogs playing with a frisbee in the park",
          "a baseball bat next to a teddy bear", "the cat sits on the dining table"] * 20


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.train(CORPUS, vocab_size=4400)


def test_fixed_ids_match_the_official_layout(tok):
    assert [tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[SOS]", "[EOS]", "[S_0]", "[S_1]", "[S_199]")] == \
        [0, 1, 2, 3, 4, 5, 203]
    assert tok.token_to_id("v0=0") == 204 and tok.token_to_id("v0=999") == 1203
    assert tok.token_to_id("v1=0") == 1204 and tok.token_to_id("v2=0") == 2204 and tok.token_to_id("v3=999") == 4203
    assert tok.token_to_id("airplane") == 4204 and tok.token_to_id("baseball bat") == 4208
    assert tok.token_to_id(COCO_CLASSES[-1]) == 4283
    assert tok.value_id(2, 5) == tok.token_to_id("v2=5")


def test_structural_tokens_survive_encoding_and_learned_pieces_follow(tok):
    ids = tok.encode("v0=12 v3=999 Baseball Bat [S_1] a man")
    assert ids[:4].tolist() == [216, 4203, 4208, 5]
    assert (ids[4:] >= 4284).all()
    assert tok.decode(ids) == "v0=12 v3=999 baseball bat [S_1] a man"


def test_batch_encode_pads_and_decode_stops_at_eos(tok):
    batch = tok.encode(["a dog", "a man riding a horse"], add_eos=True)
    assert batch.shape[0] == 2 and batch[0, -1] == tok.pad_id
    assert tok.decode(batch) == ["a dog", "a man riding a horse"]


def test_unknown_words_are_the_pieces_read_as_unk(tok):
    assert tok.unknown_words("a dog on a horse") == []
    assert tok.unknown_words("a Dog 日本 on a horse 日") == ["日", "本"]  # as written, each once
    assert (tok.encode("日") == tok.unk_id).all()


def test_save_and_reload(tmp_path, tok):
    path = tok.save_pretrained(tmp_path)
    again = TextTokenizer.from_pretrained(tmp_path)
    assert torch.equal(again.encode("a dog v1=3"), tok.encode("a dog v1=3"))
    assert json.loads(path.read_text())["model"]["type"] == "WordPiece"


def test_wrong_layout_and_bad_files_are_rejected(tmp_path):
    from tokenizers import Tokenizer, models, trainers

    plain = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    plain.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=100, special_tokens=["[UNK]", "[PAD]"]))
    plain.save(str(tmp_path / "plain.json"))
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        TextTokenizer.from_pretrained(tmp_path / "plain.json")
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(ValueError, match="not a readable tokenizers JSON"):
        TextTokenizer.from_pretrained(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="must exceed"):
        TextTokenizer.train(CORPUS, vocab_size=100)


def test_out_of_vocabulary_ids_are_rejected(tok):
    with pytest.raises(ValueError, match="outside this vocabulary"):
        tok.decode([5, 10**6])
