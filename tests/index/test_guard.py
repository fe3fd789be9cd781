"""The Guard on a deterministic fake encoder: verdicts, topics, allow-examples, windows, persistence."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from index import (
    DuplicateExemplarError,
    Exemplar,
    Guard,
    GuardConfig,
    HashingEncoder,
    IndexArtifactError,
    InvalidInputError,
    Label,
    UnknownLabelError,
    VectorStore,
    load_guard,
    normalize_text,
    read_guard_metadata,
    save_guard,
    split_windows,
)
from index.units import top_per_owner
from tests.conftest import TOY_EXEMPLARS, TOY_LABELS

COOKING = [
    "give me a recipe for pasta carbonara",
    "how do I bake sourdough bread",
    "best recipe for beef lasagna",
    "how long should I roast a chicken",
    "recipe for chocolate chip cookies",
]


def test_unsafe_text_is_flagged_with_category_and_evidence(toy_guard: Guard) -> None:
    v = toy_guard.classify(["those people are subhuman vermin who should be expelled"])[0]
    assert v.flagged and v.category == "hate" and v.action == "block"
    assert 0.5 <= v.score <= 1.0
    assert v.evidence and v.evidence[0].label == "hate"
    assert set(v.categories) == {"violence", "hate", "profanity"}
    assert abs(sum(v.categories.values()) - v.score) < 1e-3, "category scores split the unsafe score"


def test_safe_text_is_not_flagged(toy_guard: Guard) -> None:
    v = toy_guard.classify(["what is the capital of spain"])[0]
    assert not v.flagged and v.category is None and v.score < 0.5


def test_score_is_monotone_with_threshold(toy_guard: Guard) -> None:
    texts = ["how do I kill my neighbour", "recommend a history book", "I will stab you", "translate hello"]
    for v in toy_guard.classify(texts):
        assert v.flagged == (v.score >= 0.5)


def test_empty_text_is_rejected(toy_guard: Guard) -> None:
    with pytest.raises(InvalidInputError, match="#1"):
        toy_guard.classify(["fine", " \u200b "])


def test_custom_topic_is_live_at_once_and_calibrated(toy_guard: Guard) -> None:
    label = toy_guard.upsert_label(Label("cooking", "custom", action="block"))
    toy_guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    threshold = toy_guard.labels["cooking"].threshold
    assert label.threshold is None and threshold is not None and threshold >= toy_guard.config.topic_threshold_floor
    v = toy_guard.classify(["a recipe for pasta carbonara please"])[0]
    assert v.flagged and v.category == "cooking" and v.action == "block" and v.threshold == threshold
    assert v.evidence[0].label == "cooking"
    assert not toy_guard.classify(["what is the capital of france"])[0].flagged


def test_a_topics_score_does_not_depend_on_the_other_topics(encoder: HashingEncoder) -> None:
    """Heads are fitted against the shipped background and the topic's own allow-examples only, so a guard built
    topic by topic scores like one loaded from its artifact (all topics at once)."""
    background = [f"generic question number {i} about {w}" for i, w in enumerate(["weather", "music", "sport"] * 50)]
    guard = Guard.build(encoder, [Label("cooking", "custom"), Label("travel", "custom")], [], None, background)
    guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    assert guard._topics.get("cooking").head is not None, "enough background text: the topic has a learned head"
    texts = ["a recipe for pasta carbonara please", "cheap flights to rome"]
    before = [v.categories["cooking"] for v in guard.classify(texts)]
    travel = ["cheap flights to rome", "book a hotel in paris", "train tickets to berlin"]
    guard.add_exemplars([Exemplar(200 + i, t, "travel") for i, t in enumerate(travel)])
    after = guard.classify(texts)
    assert [v.categories["cooking"] for v in after] == before
    assert after[0].category == "cooking" and after[1].category == "travel"


def test_too_little_background_text_means_no_head(toy_guard: Guard) -> None:
    toy_guard.upsert_label(Label("cooking", "custom"))
    toy_guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    assert len(toy_guard.background) < toy_guard.encoder.dim
    assert toy_guard._topics.get("cooking").head is None


def test_allow_examples_suppress_a_topic(toy_guard: Guard) -> None:
    toy_guard.upsert_label(Label("cooking", "custom", action="flag", threshold=0.3))
    toy_guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    text = "recipe for chocolate chip cookies"
    before = toy_guard.classify([text])[0].categories["cooking"]
    toy_guard.add_exemplars([Exemplar(200, "recipe for chocolate chip cookies", "cooking", role="allow")])
    after = toy_guard.classify([text])[0]
    assert after.categories["cooking"] < before
    assert after.category != "cooking"


def test_removing_a_topic_removes_its_exemplars(toy_guard: Guard) -> None:
    toy_guard.upsert_label(Label("cooking", "custom", threshold=0.3))
    toy_guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    size = len(toy_guard)
    removed = toy_guard.remove_label("cooking")
    assert sorted(removed) == list(range(100, 105)) and len(toy_guard) == size - 5
    v = toy_guard.classify(["a recipe for pasta carbonara please"])[0]
    assert "cooking" not in v.categories and v.category != "cooking"


def test_builtin_labels_cannot_be_removed_or_invented(toy_guard: Guard) -> None:
    with pytest.raises(UnknownLabelError):
        toy_guard.remove_label("hate")
    with pytest.raises(UnknownLabelError):
        toy_guard.upsert_label(Label("weapons", "builtin"))
    with pytest.raises(UnknownLabelError):
        toy_guard.add_exemplars([Exemplar(500, "x", "no-such-topic")])


def test_failed_add_changes_nothing(toy_guard: Guard) -> None:
    size = len(toy_guard)
    with pytest.raises(DuplicateExemplarError):
        toy_guard.add_exemplars([Exemplar(600, "new one", "hate"), Exemplar(1, "dup id", "hate")])
    assert len(toy_guard) == size and 600 not in toy_guard.exemplars


def test_disabled_category_is_not_flagged(toy_guard: Guard) -> None:
    text = "those people are subhuman vermin"
    assert toy_guard.classify([text])[0].category == "hate"
    toy_guard.upsert_label(replace(toy_guard.labels["hate"], enabled=False))
    v = toy_guard.classify([text])[0]
    assert v.category != "hate" and "hate" not in v.categories


def test_unsafe_sentence_after_2000_benign_words_is_flagged(toy_guard: Guard) -> None:
    toy_guard.config = replace(toy_guard.config, window_tokens=24)
    benign = " ".join(["the weather was calm and the garden looked lovely in spring"] * 190)
    assert len(benign.split()) > 2000
    text = benign + " those people are subhuman vermin who should be expelled"
    v = toy_guard.classify([text])[0]
    assert v.windows > 10
    assert v.flagged and v.category == "hate"
    assert not toy_guard.classify([benign])[0].flagged


def test_concurrent_classify_and_edits_do_not_fail(toy_guard: Guard) -> None:
    toy_guard.upsert_label(Label("cooking", "custom", threshold=0.3))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                toy_guard.classify(["recipe for pasta", "I will stab you"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(40):
        toy_guard.add_exemplars([Exemplar(1000 + i, f"recipe number {i} for pasta", "cooking")])
        if i % 2:
            toy_guard.remove_exemplars([1000 + i - 1])
    for t in threads:
        t.join()
    assert not errors


def test_artifact_round_trip_gives_identical_verdicts(
    toy_guard: Guard, encoder: HashingEncoder, tmp_path: Path
) -> None:
    toy_guard.upsert_label(Label("cooking", "custom"))
    toy_guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    save_guard(toy_guard, tmp_path / "g", {"state": "abc", "version": 7})
    loaded = load_guard(tmp_path / "g", encoder)
    texts = ["recipe for lasagna", "I will stab you", "capital of france"]
    assert loaded.classify(texts) == toy_guard.classify(texts)
    assert loaded.labels == toy_guard.labels
    assert read_guard_metadata(tmp_path / "g") == {"state": "abc", "version": 7}


def test_loading_an_ivf_artifact_adopts_the_trained_index(
    encoder: HashingEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up reads the saved IVF index as it is: no vector is re-added, so k-means never re-runs."""
    config = GuardConfig(ann_threshold=5, ann_nlist=4)
    guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, config)
    assert guard.store.backend == "ivf"
    save_guard(guard, tmp_path / "g")

    def no_add(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_guard re-added vectors")

    monkeypatch.setattr(VectorStore, "add", no_add)
    loaded = load_guard(tmp_path / "g", encoder)
    assert loaded.store.backend == "ivf" and loaded.checksum() == guard.checksum()
    texts = ["how do I kill my neighbour", "write a poem about spring"]
    assert loaded.classify(texts) == guard.classify(texts)
    with pytest.raises(InvalidInputError, match="empty guard"):
        loaded.adopt_store(loaded.store, list(loaded.exemplars.values()))


def test_artifact_for_another_encoder_or_corrupt_is_refused(toy_guard: Guard, tmp_path: Path) -> None:
    save_guard(toy_guard, tmp_path / "g")
    with pytest.raises(IndexArtifactError, match="built with"):
        load_guard(tmp_path / "g", HashingEncoder(dim=32))
    vectors = tmp_path / "g" / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:-10])
    with pytest.raises(IndexArtifactError, match="checksum"):
        load_guard(tmp_path / "g", toy_guard.encoder)
    with pytest.raises(IndexArtifactError):
        load_guard(tmp_path / "missing", toy_guard.encoder)


def test_guard_config_loads_overrides_and_rejects_unknown_keys(tmp_path: Path) -> None:
    from index import GuardConfig, InvalidInputError, Platt, load_guard_config

    path = tmp_path / "scoring.json"
    path.write_text('{"k": 8, "platt": {"a": 2.0, "b": -1.0}, "_note": "chosen on dev"}')
    cfg = load_guard_config(path)
    assert cfg.k == 8 and cfg.platt == Platt(2.0, -1.0) and cfg.threshold == GuardConfig().threshold
    path.write_text('{"kk": 8}')
    with pytest.raises(InvalidInputError, match="kk"):
        load_guard_config(path)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_guard_config(tmp_path / "nope.json")


def test_artifact_from_another_normalisation_version_is_stale(toy_guard: Guard, tmp_path: Path) -> None:
    import json

    save_guard(toy_guard, tmp_path / "g")
    manifest_path = tmp_path / "g" / "guard.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["normalization"] = 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexArtifactError, match="normalisation"):
        load_guard(tmp_path / "g", toy_guard.encoder)


def test_category_threshold_overrides_the_global_one(toy_guard: Guard) -> None:
    text = "those people are subhuman vermin"
    before = toy_guard.classify([text])[0]
    assert before.flagged and before.category == "hate" and before.threshold == toy_guard.config.threshold
    toy_guard.config = replace(toy_guard.config, category_thresholds={"hate": 0.999})
    after = toy_guard.classify([text])[0]
    assert not after.flagged and after.score == before.score
    toy_guard.upsert_label(replace(toy_guard.labels["hate"], threshold=0.2))
    assert toy_guard.classify([text])[0].threshold == 0.2, "a label's own threshold wins over the config"


class CountingEncoder(HashingEncoder):
    """The fake encoder, counting the texts it is asked to encode."""

    def __init__(self) -> None:
        super().__init__(dim=128, max_tokens=64)  # the toy guard's encoder
        self.encoded: list[str] = []

    def encode(self, texts, batch_size=32):  # type: ignore[no-untyped-def]
        self.encoded.extend(texts)
        return super().encode(texts, batch_size)


class RenamedEncoder(CountingEncoder):
    @property
    def model_id(self) -> str:
        return "hashing-other-model"


def test_build_reusing_a_guard_encodes_only_what_changed(toy_guard: Guard) -> None:
    """A rebuild under a new scoring configuration takes the old vectors: same result as a full build, no re-encoding
    of unchanged exemplars; a changed text, a new exemplar or another encoder's guard is encoded afresh."""
    encoder = CountingEncoder()
    exemplars = sorted(toy_guard.exemplars.values(), key=lambda e: e.id)
    edited = replace(exemplars[0], text=exemplars[0].text + " right now")
    added = Exemplar(max(e.id for e in exemplars) + 1, "how do I build a pipe bomb at home", exemplars[1].label)
    new = [edited, *exemplars[1:], added]
    config = replace(toy_guard.config, k=3)
    background = ["tell me a joke", "what time is it"]
    labels = list(toy_guard.labels.values())

    reused = Guard.build(encoder, labels, new, config, background, reuse=toy_guard)
    assert sorted(encoder.encoded) == sorted([edited.text, added.text, *background])
    full = Guard.build(HashingEncoder(dim=128, max_tokens=64), labels, new, config, background)
    probe = ["how do I make a bomb", "give me a recipe for pasta", "hello there"]
    assert reused.classify(probe) == full.classify(probe)
    assert reused.checksum() == full.checksum()

    other = RenamedEncoder()  # another model: its vectors would not be comparable, so nothing is reused
    Guard.build(other, labels, new, config, background, reuse=toy_guard)
    assert len(other.encoded) == len(new) + len(background)


class CallRecordingEncoder(HashingEncoder):
    """The toy guard's encoder, recording each `encode` call's texts (`encode_spans` makes one call of its own)."""

    def __init__(self) -> None:
        super().__init__(dim=128, max_tokens=64)
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=32):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return super().encode(texts, batch_size)


def test_only_a_suspect_sentence_is_encoded_alone() -> None:
    """Stage 1 reads every sentence of a long text in context (no extra call); only a sentence whose in-context
    score reaches `sentence_threshold` is encoded alone (one more call, with exactly that sentence) and decides."""
    encoder = CallRecordingEncoder()
    guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, GuardConfig())
    filler = "We walked along the river in the morning. The bakery on the corner sells rye bread. "
    encoder.calls.clear()
    benign = guard.classify([filler * 4 + "Then we went home."])[0]
    assert not benign.flagged and len(encoder.calls) == 1

    encoder.calls.clear()
    short = "Nice weather today. how do I kill my neighbour without getting caught."
    assert len(encoder.token_spans([short])[0]) <= guard.config.sentence_min_tokens
    assert guard.classify([short])[0].flagged and len(encoder.calls) == 1, "a short text is not split"

    encoder.calls.clear()
    buried = guard.classify([filler * 3 + "how do I kill my neighbour without getting caught. " + filler])[0]
    assert buried.flagged and buried.category == "violence"
    assert encoder.calls[1:] == [["how do I kill my neighbour without getting caught."]]

    guard.config = replace(guard.config, sentence_threshold=None)
    encoder.calls.clear()
    text = filler * 3 + "how do I kill my neighbour without getting caught. " + filler
    guard.classify([text])
    windows = split_windows(encoder, normalize_text(text), guard.config.window_overlap, guard.config.window_tokens)
    assert len(windows) > 1 and encoder.calls == [windows], "sentence units off: windows only"


def test_ann_nprobe_is_read_from_the_config_at_search_time(toy_guard: Guard, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int | None] = []
    search = toy_guard.store.search

    def spy(queries, k, nprobe=None):  # type: ignore[no-untyped-def]
        seen.append(nprobe)
        return search(queries, k, nprobe)

    monkeypatch.setattr(toy_guard.store, "search", spy)
    toy_guard.config = replace(toy_guard.config, ann_nprobe=7)
    toy_guard.classify(["hello there"])
    assert seen and set(seen) == {7}


def test_suspect_sentences_alone_are_capped_per_text_by_in_context_score() -> None:
    """A long text full of unsafe sentences pays at most `sentence_max_suspects` extra encodings, spent on its
    highest-scoring sentences in context; another text in the same call keeps its own quota."""
    encoder = CallRecordingEncoder()
    guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, GuardConfig(sentence_max_suspects=None))
    filler = "We walked along the river in the morning. The bakery on the corner sells rye bread. "
    unsafe = [f"how do I kill my neighbour number {n} without getting caught." for n in range(6)]
    crowded = filler + " ".join(unsafe) + " " + filler
    buried = filler * 3 + "how do I kill my neighbour without getting caught. " + filler

    encoder.calls.clear()
    uncapped = guard.classify([crowded, buried])
    alone = [t for call in encoder.calls[1:] for t in call]
    assert set(unsafe) <= set(alone), "with no cap every suspect is read alone"

    guard.config = replace(guard.config, sentence_max_suspects=2)
    encoder.calls.clear()
    capped = guard.classify([crowded, buried])
    read = [t for call in encoder.calls[1:] for t in call]
    assert len([t for t in read if t in unsafe]) == 2
    assert "how do I kill my neighbour without getting caught." in read, "the other text keeps its own quota"
    assert [v.flagged for v in capped] == [v.flagged for v in uncapped] == [True, True]
    assert capped[0].category == uncapped[0].category


def test_top_per_owner_keeps_each_owners_highest_scores_in_index_order() -> None:
    scores = np.asarray([0.9, 0.8, 0.95, 0.7, 0.99, 0.85, 0.1])
    owner = np.asarray([0, 0, 0, 0, 1, 1, 1])
    candidates = np.asarray([0, 1, 2, 3, 4, 5])
    assert top_per_owner(candidates, scores, owner, 2).tolist() == [0, 2, 4, 5]
    assert top_per_owner(candidates, scores, owner, 1).tolist() == [2, 4]
    assert top_per_owner(candidates, scores, owner, None).tolist() == candidates.tolist()
    assert top_per_owner(candidates[:0], scores, owner, 1).tolist() == []


def test_a_topic_sentence_buried_in_long_text_matches_its_topic() -> None:
    """Sentence units decide custom topics too: one on-topic sentence in long unrelated text is read alone and
    matches, with evidence from the topic's own examples; with `sentence_topics` off the window dilutes it."""
    encoder = CallRecordingEncoder()
    guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, GuardConfig())
    guard.upsert_label(Label("cooking", "custom", action="flag"))
    guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    filler = "We walked along the river in the morning. The bakery on the corner sells rye bread. "
    sentence = "Give me a recipe for beef lasagna."
    text = filler * 3 + sentence + " " + filler * 2
    assert guard.classify([sentence])[0].category == "cooking"
    assert not guard.classify([filler * 5])[0].flagged, "the filler alone matches nothing"

    encoder.calls.clear()
    verdict = guard.classify([text])[0]
    assert verdict.flagged and verdict.category == "cooking"
    assert verdict.evidence and verdict.evidence[0].label == "cooking"
    assert encoder.calls[1:] == [[sentence]], "only the on-topic sentence is read alone"

    guard.config = replace(guard.config, sentence_topics=False)
    assert guard.classify([text])[0].category != "cooking"


def test_a_decoded_text_is_decided_by_what_it_decodes_to(toy_guard: Guard) -> None:
    """Its own windows read the encoded form (gibberish beside an instruction) and do not decide; the payload and
    the words around it do, each as a unit (issue 24)."""
    import base64

    from index.deobfuscate import deobfuscated_units

    payload = base64.b64encode(b"write a poem about spring flowers").decode()
    for text in (f"Decode this and answer it: {payload}", f"I will stab you with a knife tonight. Decode: {payload}"):
        plan = toy_guard.plan([text])
        assert plan.decoded == frozenset({0})
        verdict = toy_guard.classify([text])[0]
        units = toy_guard.classify(deobfuscated_units(text))
        assert verdict.score == max(v.score for v in units)
        assert verdict.flagged == any(v.flagged for v in units)
        assert verdict.windows == 1
    assert toy_guard.classify([f"I will stab you with a knife tonight. Decode: {payload}"])[0].category == "violence"
    assert toy_guard.plan(["I will stab you with a knife tonight"]).decoded == frozenset()


def test_the_calibration_sample_of_safe_exemplars_follows_edits(encoder: HashingEncoder) -> None:
    """The safe exemplars a topic is calibrated against are read once and kept: adding or removing safe exemplars
    must give the threshold a guard built from scratch with the same exemplars gives."""

    def fresh_threshold(exemplars: list[Exemplar]) -> float | None:
        guard = Guard.build(encoder, TOY_LABELS, exemplars, background_texts=["tell me a joke", "what time is it"])
        guard.upsert_label(Label("cooking", "custom"))
        guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
        return guard.labels["cooking"].threshold

    guard = Guard.build(encoder, TOY_LABELS, TOY_EXEMPLARS, background_texts=["tell me a joke", "what time is it"])
    guard.upsert_label(Label("cooking", "custom"))
    guard.add_exemplars([Exemplar(100 + i, t, "cooking") for i, t in enumerate(COOKING)])
    original = guard.labels["cooking"].threshold
    near = [Exemplar(300 + i, f"{t} for my family", "safe") for i, t in enumerate(COOKING)]
    guard.add_exemplars(near)
    raised = guard.calibrate_topic("cooking")
    assert raised != original, "safe text near the topic moves its background quantile"
    assert raised == fresh_threshold([*TOY_EXEMPLARS, *near])
    guard.remove_exemplars([e.id for e in near])
    assert guard.calibrate_topic("cooking") == original == fresh_threshold(list(TOY_EXEMPLARS))


def test_a_calibration_reads_the_safe_exemplars_from_the_store_once(
    toy_guard: Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    book = toy_guard._book
    safe_vectors = book.safe_vectors
    monkeypatch.setattr(book, "safe_vectors", lambda limit: reads.append(limit) or safe_vectors(limit))
    for name, ids in (("cooking", 100), ("baking", 200)):
        toy_guard.upsert_label(Label(name, "custom"))
        toy_guard.add_exemplars([Exemplar(ids + i, t, name) for i, t in enumerate(COOKING)])
    toy_guard.calibrate_topic("cooking")
    assert len(reads) == 1
