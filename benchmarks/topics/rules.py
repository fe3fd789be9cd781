"""The topic benchmark's rules and metrics: pure functions of cached vectors, no I/O (benchmarks/topics/bench.py runs
them). Scoring and calibration go through the library (`index.topics.topic_scores`, `index.topics.head`,
`index.topics.topic_threshold`) exactly as `Guard` applies them; tests/index/test_topics_bench.py checks that.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from index import GuardConfig
from index.calibration import best_f1_threshold, fmr_threshold
from index.topics import GramStats, TopicHead, fit_topic_head, topic_scores, topic_threshold

Vec = NDArray[np.float32]
GROUPS = ("ood", "near", "other")


# ------------------------------------------------------------------------------------------------ rules
@dataclass(frozen=True, slots=True)
class Rule:
    """A scoring + threshold rule. `fixed` set = one global threshold (semantic-router style), no calibration."""

    name: str
    top_m: int = 3
    knn_weight: float = 0.5
    target_fmr: float = 0.01
    floor: float = 0.35
    positive_quantile: float | None = None
    positive_margin: float = 0.0
    fixed: float | None = None
    allows: int = 0  # allow-examples per topic taken from the dataset's allow pool
    valid_f1: bool = False  # per-topic threshold = max F1 on the valid split (what /evaluate suggests)
    # per-topic threshold = the lowest with at most this false-match rate on labelled valid rows (the evaluate
    # route's other suggestion, `fmr_threshold`)
    valid_fmr: float | None = None
    # labelled valid rows an operator has: every positive of the drawn topics plus this many random negatives (None:
    # the whole valid split); used by valid_f1 and valid_fmr
    valid_negatives: int | None = None
    # report-only ceiling: per topic, the threshold that lets at most this share of the *scored* rows' far negatives
    # (out of domain + other intents) match it, chosen on those very rows
    oracle_fmr: float | None = None
    head_weight: float = 0.0  # weight of the learned head (index.topics.head) in the topic score
    head_l2: float = 0.01
    interpolation: float | None = None  # threshold rule of index.topics.topic_threshold


def shipped_rule(cfg: GuardConfig, name: str = "lightguard") -> Rule:
    """The rule the guard applies with this config."""
    return Rule(
        name,
        cfg.topic_top_m,
        cfg.topic_knn_weight,
        cfg.topic_target_fmr,
        cfg.topic_threshold_floor,
        cfg.topic_positive_quantile,
        cfg.topic_positive_margin,
        head_weight=cfg.topic_head_weight,
        head_l2=cfg.topic_head_l2,
        interpolation=cfg.topic_interpolation,
    )


# the similarity-only rules shipped before the learned head (docs/topics.md, "Method")
V0 = Rule("lightguard v0 (floor only)")
V1 = Rule("lightguard v1 (lift)", positive_quantile=0.3, positive_margin=0.1)


def default_rules(cfg: GuardConfig) -> list[Rule]:
    base = shipped_rule(cfg)
    no_head = replace(base, name="lightguard no head", head_weight=0.0)
    return [
        base,
        no_head,
        replace(base, name="head only", head_weight=1.0),
        V1,
        V0,
        replace(no_head, name="knn-only", knn_weight=1.0),
        replace(no_head, name="centroid-only", knn_weight=0.0),
        # semantic-router: mean of the top-5 similarities per route, one fixed threshold (HuggingFaceEncoder: 0.5)
        Rule("semantic-router@0.5", top_m=5, knn_weight=1.0, fixed=0.5),
        replace(base, name="lightguard valid-f1", valid_f1=True),
        replace(base, name="lightguard +5 allows", allows=5),
        replace(base, name="oracle @3%", oracle_fmr=0.03),
    ]


def labelled_rules(cfg: GuardConfig) -> list[Rule]:
    """The evaluate route's target-false-match suggestion applied as the threshold, by how many labelled negatives
    the operator has; run only when named (`grid --rules`)."""
    base = shipped_rule(cfg)
    return [
        replace(base, name=f"labelled @{round(100 * fmr)}%, {n or 'all'} neg", valid_fmr=fmr, valid_negatives=n)
        for fmr in (0.01, 0.03)
        for n in (100, 300, 1000, None)
    ]


# ------------------------------------------------------------------------------------------------ episodes
@dataclass(frozen=True, slots=True)
class Background:
    """What the guard calibrates against (`vectors`: data/background.jsonl + a sample of the shipped safe
    exemplars; each topic adds the other topics' examples) and what its heads are fitted against (`generic`:
    data/background.jsonl only, the guard's `background`)."""

    vectors: Vec
    generic: Vec

    def head_negatives(self) -> GramStats:
        return GramStats.of(self.generic)


@dataclass(slots=True)
class Episode:
    """One (T, K, seed) draw: the chosen topics' examples and the queries with their truth."""

    topics: list[str]
    positives: list[Vec]
    allows: list[Vec | None]
    queries: Vec
    truth: NDArray[np.int64]  # index into topics, -1 for negatives
    group: NDArray[np.str_]  # "pos" / "ood" / "near" / "other"
    valid_queries: Vec
    valid_truth: NDArray[np.int64]
    valid_group: NDArray[np.str_]
    example_rows: list[list[int]] = field(default_factory=list)  # per topic, the train rows `positives` holds


def with_allows(ep: Episode, pool: Vec, per_topic: int) -> list[Vec | None]:
    """Each topic gets the `per_topic` pool rows nearest its centroid among those nearest to it (an operator adding
    the near misses they saw)."""
    cents = np.stack([p.mean(axis=0) / np.linalg.norm(p.mean(axis=0)) for p in ep.positives])
    sims = pool @ cents.T
    owner = sims.argmax(axis=1)
    out: list[Vec | None] = []
    for t in range(len(ep.topics)):
        rows = np.flatnonzero(owner == t)
        best = rows[np.argsort(-sims[rows, t])[:per_topic]]
        out.append(pool[best] if best.size else None)
    return out


@dataclass(slots=True)
class FittedTopic:
    """One topic as the guard holds it: examples, allow-examples, and the head fitted on them."""

    positives: Vec
    allows: Vec | None
    head: TopicHead | None
    head_loo: Vec | None


def fit_topics(ep: Episode, negatives: GramStats, rule: Rule) -> list[FittedTopic]:
    """Heads as `Guard._refresh` fits them: the topic's examples against the generic background + its allows."""
    out = []
    for pos, allow in zip(ep.positives, ep.allows, strict=True):
        head, loo = (None, None)
        if rule.head_weight > 0 and negatives.count >= pos.shape[1]:
            head, loo = fit_topic_head(pos, negatives.plus(allow), rule.head_l2)
        out.append(FittedTopic(pos, allow, head, loo))
    return out


def topic_column(queries: Vec, topic: FittedTopic, rule: Rule) -> Vec:
    head = None if topic.head is None else topic.head.predict(queries)
    return topic_scores(
        queries, topic.positives, topic.allows, rule.top_m, rule.knn_weight, head=head, head_weight=rule.head_weight
    )


def score_matrix(queries: Vec, topics: list[FittedTopic], rule: Rule) -> Vec:
    return np.stack([topic_column(queries, t, rule) for t in topics], axis=1)


def loo_scores(topic: FittedTopic, rule: Rule) -> Vec:
    """Leave-one-out scores of a topic's own examples (as Guard._leave_one_out)."""
    n = topic.positives.shape[0]
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    out = []
    for i in range(n):
        head = None if topic.head_loo is None else topic.head_loo[i : i + 1]
        rest = np.delete(topic.positives, i, axis=0)
        query = topic.positives[i : i + 1]
        out.append(
            topic_scores(
                query, rest, topic.allows, rule.top_m, rule.knn_weight, head=head, head_weight=rule.head_weight
            )
        )
    return np.concatenate(out).astype(np.float32)


def calibration_inputs(topics: list[FittedTopic], background: Background, rule: Rule) -> list[tuple[Vec, Vec]]:
    """Per topic: (LOO scores, background scores); background = corpus + the other topics' examples."""
    out = []
    for t, topic in enumerate(topics):
        others = [o.positives for j, o in enumerate(topics) if j != t]
        bg = np.concatenate([background.vectors, *others], axis=0)
        out.append((loo_scores(topic, rule), topic_column(bg, topic, rule)))
    return out


def rule_thresholds(rule: Rule, inputs: list[tuple[Vec, Vec]]) -> Vec:
    return np.asarray(
        [
            topic_threshold(
                loo, bg, rule.target_fmr, rule.floor, rule.positive_quantile, rule.positive_margin, rule.interpolation
            )
            for loo, bg in inputs
        ],
        dtype=np.float32,
    )


def oracle_thresholds(scores: Vec, group: NDArray[np.str_], fmr: float) -> Vec:
    """Per topic column, the lowest threshold that lets at most `fmr` of the far negatives (ood + other) match."""
    far = (group == "ood") | (group == "other")
    if not far.any():
        return np.full(scores.shape[1], np.inf, dtype=np.float32)
    thresholds: NDArray[np.float32] = (np.quantile(scores[far], 1.0 - fmr, axis=0, method="higher") + 1e-6).astype(
        np.float32
    )
    return thresholds


def thresholds_for(
    ep: Episode,
    topics: list[FittedTopic],
    background: Background,
    rule: Rule,
    inputs: list[tuple[Vec, Vec]] | None = None,
) -> Vec:
    if rule.oracle_fmr is not None:
        raise ValueError(f"{rule.name}: an oracle threshold is chosen on the scored rows (oracle_thresholds)")
    if rule.fixed is not None:
        return np.full(len(ep.topics), rule.fixed, dtype=np.float32)
    if rule.valid_f1 or rule.valid_fmr is not None:
        rows = labelled_rows(ep, rule.valid_negatives)
        scores = score_matrix(ep.valid_queries[rows], topics, rule)
        truth = ep.valid_truth[rows]
        return np.asarray(
            [
                best_f1_threshold(scores[:, t], truth == t)[0]
                if rule.valid_f1
                else fmr_threshold(scores[:, t], truth == t, rule.valid_fmr or 0.0)
                for t in range(len(ep.topics))
            ],
            dtype=np.float32,
        )
    return rule_thresholds(rule, calibration_inputs(topics, background, rule) if inputs is None else inputs)


def labelled_rows(ep: Episode, negatives: int | None) -> NDArray[np.intp]:
    """Valid rows an operator labelled: all the topics' positives and `negatives` random others (None: all rows),
    drawn the same way for every rule of the episode."""
    if negatives is None:
        return np.arange(len(ep.valid_truth))
    pos = np.flatnonzero(ep.valid_truth >= 0)
    neg = np.flatnonzero(ep.valid_truth < 0)
    rng = np.random.default_rng(zlib.crc32(",".join(ep.topics).encode()))
    return np.sort(np.concatenate([pos, rng.choice(neg, min(negatives, neg.size), replace=False)]))


# ------------------------------------------------------------------------------------------------ metrics
def auroc(pos: NDArray[np.floating], neg: NDArray[np.floating]) -> float:
    """Mann-Whitney AUROC (ties count half); nan when a side is empty."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    values = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + ends + 1) / 2.0)[inverse]  # 1-based ranks, averaged over ties
    r_pos = ranks[: pos.size].sum()
    return float((r_pos - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def episode_metrics(
    scores: Vec, thresholds: Vec, truth: NDArray[np.int64], group: NDArray[np.str_], ranking: bool = True
) -> dict[str, float]:
    """Topic accuracy, false-match rate per negative group, AUROC, TPR at 1% FMR and the threshold gap.

    A row's margin is max over topics of (score - threshold); it matches the arg-max topic when the margin is >= 0
    (the guard picks the topic with the largest margin). The gap is the offset added to every threshold that would
    maximise F1 on these rows (positive: the calibrated thresholds were too low); it is report-only.
    """
    margins = scores - thresholds[None, :]
    best = margins.argmax(axis=1)
    margin = margins.max(axis=1)
    is_pos = truth >= 0
    correct = is_pos & (best == truth)
    matched = margin >= 0
    out: dict[str, float] = {"accuracy": float((correct & matched)[is_pos].mean()) if is_pos.any() else float("nan")}
    neg = ~is_pos
    out["fmr"] = float(matched[neg].mean()) if neg.any() else float("nan")
    far = (group == "ood") | (group == "other")
    out["fmr_far"] = float(matched[far].mean()) if far.any() else float("nan")
    for g in GROUPS:
        rows = group == g
        out[f"fmr_{g}"] = float(matched[rows].mean()) if rows.any() else float("nan")
    if not ranking:
        return out
    out["auroc"] = auroc(margin[is_pos], margin[neg])
    if neg.any():
        cut = float(np.quantile(margin[neg], 0.99, method="higher")) + 1e-6
        out["tpr@1%"] = float((correct & (margin >= cut))[is_pos].mean()) if is_pos.any() else float("nan")
    # best global offset on these rows: a flag is a TP only when it names the right topic
    order = np.argsort(-margin, kind="stable")
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~correct[order])
    f1 = 2 * tp / (tp + fp + is_pos.sum())
    out["gap"] = float(margin[order][int(np.argmax(f1))]) if is_pos.any() else float("nan")
    return out
