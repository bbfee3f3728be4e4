from open4m.data.synthetic import generate_sample
from open4m.eval.captions import SceneCaptionMetrics


def test_ground_truth_captions_score_perfectly():
    m = SceneCaptionMetrics()
    for seed in range(4):
        s = generate_sample(seed, 48, labels=False)
        row = m.update(s["caption"], s["scene_graph"])
        assert row["count_acc"] == 1.0 and row["object_f1"] == 1.0
    r = m.compute()
    assert r["parse_rate"] == 1.0 and r["count_acc"] == 1.0
    assert r["relation_acc"] == 1.0


def test_wrong_captions_are_penalised():
    s = generate_sample(5, 48, labels=False)
    m = SceneCaptionMetrics()
    m.update("A room with nine objects. I can see a large red metal cone.", s["scene_graph"])
    m.update("no count here", s["scene_graph"])
    r = m.compute()
    assert r["count_acc"] == 0.0 and r["parse_rate"] == 0.5 and r["object_f1"] < 0.5
