"""benchmarks.data.topics converters, benchmarks.topics rules, episodes and metrics, on tiny synthetic data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.data import topics as datasets
from benchmarks.topics import bench, episodes, rules
from index import Exemplar, Guard, GuardConfig, HashingEncoder, Label, fmr_threshold


def _seq(folder: Path, texts: list[str], labels: list[str]) -> None:
    folder.mkdir(parents=True)
    (folder / "seq.in").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (folder / "label").write_text("\n".join(labels) + "\n", encoding="utf-8")


def test_banking77_oos_marks_in_and_out_of_domain(tmp_path: Path) -> None:
    root = tmp_path / "banking77_oos"
    for split in ("train", "valid", "test"):
        _seq(root / split, [f"card {split}", f"top up {split}"], ["card_arrival", "top_up"])
        _seq(root / "id-oos" / split, [f"exchange rate {split}"], ["oos"])
    for split in ("valid", "test"):
        _seq(root / "ood-oos" / split, [f"weather {split}"], ["oos"])
    out = datasets.convert("banking77_oos", tmp_path)
    assert [r.label for r in out["test"]] == ["card_arrival", "top_up", "oos_in_domain", "oos"]
    assert {r.label for r in out["train"]} == {"card_arrival", "top_up"}  # id-oos train goes to the allow pool
    assert [r.text for r in out["allow"]] == ["exchange rate train"]


def test_seq_dir_length_mismatch_is_an_error(tmp_path: Path) -> None:
    _seq(tmp_path / "x", ["a", "b"], ["l1"])
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        datasets.read_seq_dir(tmp_path / "x")


def test_rasa_nlu_and_hash_split_are_deterministic() -> None:
    rows = datasets.parse_rasa_nlu(
        "## intent:user.bored\n- I'm bored\n- so [bored](feeling)\n\n## synonym:x\n- y\n## intent:greet\n- hi\n"
    )
    assert [(r.text, r.label) for r in rows] == [
        ("I'm bored", "user.bored"),
        ("so bored", "user.bored"),
        ("hi", "greet"),
    ]
    assert datasets.hash_split("hello") == datasets.hash_split("hello")
    assert {datasets.hash_split(f"t{i}") for i in range(200)} == {"train", "valid", "test"}


def test_healthcare_no_route_is_in_domain_oos(tmp_path: Path) -> None:
    root = tmp_path / "semantic_router_healthcare"
    root.mkdir()
    (root / "healthcare-routing-evaluation.csv").write_text(
        "id,split,speaker,example_type,utterance,expected_route,alternate_routes,rationale\n"
        "1,train,member,positive,Was my claim received?,claims,,r\n"
        "2,validation,member,negative,What is a good sandwich?,,,r\n",
        encoding="utf-8",
    )
    out = datasets.convert("semantic_router_healthcare", tmp_path)
    assert [r.label for r in out["train"]] == ["claims"] and [r.label for r in out["valid"]] == ["oos_in_domain"]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    rows = [datasets.TopicRow("a", "x"), datasets.TopicRow("b", "oos")]
    for split in ("train", "valid", "test"):
        datasets.write_jsonl(tmp_path / f"{split}.jsonl", rows)
    assert datasets.load_splits(tmp_path)["test"] == rows
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        datasets.load_splits(tmp_path)


def test_auroc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 30).round(1), rng.normal(0, 1, 40).round(1)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert rules.auroc(pos, neg) == pytest.approx(pairs)
    assert np.isnan(rules.auroc(pos, np.zeros(0)))


def test_episode_metrics_on_a_hand_made_case() -> None:
    # two topics with thresholds 0.5 / 0.6; rows: right topic, wrong topic, below threshold, ood hit, other miss
    scores = np.asarray([[0.9, 0.1], [0.8, 0.2], [0.1, 0.55], [0.7, 0.0], [0.2, 0.3], [0.1, 0.1]], dtype=np.float32)
    thresholds = np.asarray([0.5, 0.6], dtype=np.float32)
    truth = np.asarray([0, 1, 1, -1, -1, -1])
    group = np.asarray(["pos", "pos", "pos", "ood", "other", "near"])
    m = rules.episode_metrics(scores, thresholds, truth, group)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert (m["fmr_ood"], m["fmr_other"], m["fmr_near"]) == (1.0, 0.0, 0.0)
    assert m["fmr"] == pytest.approx(1 / 3)
    assert 0.0 <= m["auroc"] <= 1.0 and "tpr@1%" in m and np.isfinite(m["gap"])


def test_oracle_threshold_lets_at_most_the_share_of_far_negatives_through() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, (300, 2)).astype(np.float32)
    group = np.asarray(["ood"] * 100 + ["other"] * 100 + ["near"] * 50 + ["pos"] * 50)
    scores[200:250] = 5.0  # near misses do not count: they would push the threshold above every far row
    far = (group == "ood") | (group == "other")
    thresholds = rules.oracle_thresholds(scores, group, 0.03)
    for t in range(2):
        assert 0.03 - 1 / far.sum() <= (scores[far, t] >= thresholds[t]).mean() <= 0.03  # within one row
    assert np.isinf(rules.oracle_thresholds(scores[200:], group[200:], 0.03)).all()
    with pytest.raises(ValueError, match="oracle"):
        rules.thresholds_for(None, [], None, replace(rules.shipped_rule(GuardConfig()), oracle_fmr=0.03))  # type: ignore[arg-type]


def test_bench_calibration_equals_the_guard() -> None:
    """The benchmark's threshold on cached vectors is the one Guard.calibrate_topic sets for the same inputs."""
    enc = HashingEncoder()
    texts = {
        "cooking": ["bake bread at home", "chocolate cake recipe", "oven temperature for bread", "knead dough"],
        "travel": ["cheap flights to rome", "book a hotel in paris", "train tickets to berlin"],
    }
    # at least as many background texts as dimensions (64), so the guard fits heads and the check covers them
    background_texts = [f"unrelated sentence number {i} about things" for i in range(80)]
    background = enc.encode(background_texts)
    cfg = GuardConfig(topic_threshold_floor=0.0)
    labels = [Label(name, "custom") for name in texts]
    exemplars = [Exemplar(i, t, name) for i, (name, t) in enumerate((n, t) for n, ts in texts.items() for t in ts)]
    guard = Guard.from_vectors(enc, labels, exemplars, enc.encode([e.text for e in exemplars]), cfg, background)
    ep = rules.Episode(
        topics=list(texts),
        positives=[enc.encode(ts) for ts in texts.values()],
        allows=[None, None],
        queries=background,
        truth=np.full(len(background), -1),
        group=np.full(len(background), "ood"),
        valid_queries=background,
        valid_truth=np.full(len(background), -1),
        valid_group=np.full(len(background), "ood"),
    )
    bg = rules.Background(vectors=background, generic=background)
    rule = rules.shipped_rule(cfg)
    assert rule.head_weight > 0 and rule.interpolation is not None, "the shipped rule is the one under test"
    topics = rules.fit_topics(ep, bg.head_negatives(), rule)
    assert all(t.head is not None for t in topics)
    ours = rules.thresholds_for(ep, topics, bg, rule)
    theirs = [guard.labels[name].threshold for name in texts]
    assert ours.tolist() == pytest.approx(theirs, abs=1e-5)
    # and the scores: the benchmark's per-topic columns are the guard's stacked topic scores
    queries = enc.encode(["bread recipe for the oven", "flights and hotels in rome", "unrelated sentence 3"])
    verdicts = guard.score_vectors(queries)
    bench_scores = rules.score_matrix(queries, topics, rule)
    assert bench_scores.max() > 0.2, "the check covers matching scores, not only zeros"
    for row, v in zip(bench_scores, verdicts, strict=True):
        assert [v.categories[name] for name in texts] == pytest.approx(np.maximum(row, 0.0).tolist(), abs=1e-5)


def test_topic_threshold_positive_quantile_lifts_a_tight_topic() -> None:
    from index.topics import topic_threshold

    loo = np.asarray([0.80, 0.82, 0.85, 0.9, 0.78], dtype=np.float32)
    background = np.linspace(-0.1, 0.2, 500).astype(np.float32)
    plain = topic_threshold(loo, background, 0.01, 0.35)
    lifted = topic_threshold(loo, background, 0.01, 0.35, positive_quantile=0.3, positive_margin=0.1)
    assert plain == pytest.approx(0.35)
    assert lifted == pytest.approx(float(np.quantile(loo, 0.3)) - 0.1)
    # a loose topic keeps the floor; no leave-one-out scores means no lift
    assert topic_threshold(loo - 0.5, background, 0.01, 0.35, 0.3, 0.1) == pytest.approx(0.35)
    assert topic_threshold(np.zeros(0), background, 0.01, 0.35, 0.3, 0.1) == pytest.approx(0.35)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_labelled_rule_applies_the_evaluate_routes_target_fmr_suggestion() -> None:
    """`labelled @3%, N neg`: the operator's labelled rows are every positive plus N random negatives (the same draw
    for every rule), and each topic's threshold is index.fmr_threshold on them, as the evaluate route suggests."""
    rng = np.random.default_rng(5)
    dim = 16
    centre = rng.normal(size=dim)
    positives = centre + 0.3 * rng.normal(size=(10, dim))
    valid = np.concatenate([centre + 0.3 * rng.normal(size=(20, dim)), rng.normal(size=(400, dim))])
    truth = np.r_[np.zeros(20, dtype=np.int64), np.full(400, -1)]
    group = np.full(420, "ood")
    ep = rules.Episode(["t"], [unit(positives)], [None], unit(valid), truth, group, unit(valid), truth, group)
    rows = rules.labelled_rows(ep, 100)
    assert len(rows) == 120 and (truth[rows] >= 0).sum() == 20
    assert np.array_equal(rows, rules.labelled_rows(ep, 100)), "one draw per episode, whatever the rule"
    assert len(rules.labelled_rows(ep, None)) == 420
    named = {r.name: r for r in rules.labelled_rules(GuardConfig())}
    rule = named["labelled @3%, 100 neg"]
    assert (rule.valid_fmr, rule.valid_negatives) == (0.03, 100)
    bg = rules.Background(vectors=unit(rng.normal(size=(80, dim))), generic=unit(rng.normal(size=(80, dim))))
    topics = rules.fit_topics(ep, bg.head_negatives(), rule)
    threshold = rules.thresholds_for(ep, topics, bg, rule)[0]
    scores = rules.score_matrix(ep.valid_queries[rows], topics, rule)[:, 0]
    neg = scores[truth[rows] < 0]
    assert (neg >= threshold).sum() == 3, "the lowest threshold that lets 3 % of 100 labelled negatives through"
    assert threshold == pytest.approx(fmr_threshold(scores, truth[rows] == 0, 0.03), abs=1e-6)


def test_episode_records_the_train_rows_of_its_examples() -> None:
    rng = np.random.default_rng(4)
    labels = [f"intent{i % 4}" for i in range(40)]
    vectors = {s: unit(rng.normal(size=(40, 8))) for s in ("train", "valid", "test")}
    data = episodes.Embedded(vectors, {s: labels for s in vectors})
    ep = episodes.draw_episode(data, 1, 5, seed=7)
    rows = ep.example_rows[0]
    assert len(rows) == 5 and np.array_equal(vectors["train"][rows], ep.positives[0])
    assert {labels[r] for r in rows} == set(ep.topics)


def test_cap_per_label_keeps_at_most_the_cap_of_each_label_and_shuffles() -> None:
    pairs = [datasets.TopicRow(f"t{i}", f"intent{i % 10}") for i in range(60)]
    tuned_on = [f"intent{i}" for i in range(0, 10, 2)]
    capped = episodes.cap_per_label([p for p in pairs if p.label in tuned_on], 2)
    assert len(capped) == 10 and {p.label for p in capped} == set(tuned_on)
    everything = episodes.cap_per_label(pairs, 100)
    assert everything != pairs and sorted(everything, key=str) == sorted(pairs, key=str)  # shuffled, all


def test_sweep_picks_the_most_accurate_setting_within_the_false_match_cap() -> None:
    cells = {0.3: (95.0, 4.0), 0.45: (91.0, 3.0), 0.55: (88.0, 2.0), 0.6: (92.0, 3.1)}
    assert bench.best_within_cap(cells, 3.0) == 0.45  # 0.3 and 0.6 are more accurate but over the cap
    assert bench.best_within_cap(cells, 1.0) is None
