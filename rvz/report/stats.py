"""The figures of `rvz report`, computed from the joined logs with numpy and scipy.

What each figure means is written once, for users, in ``rvz.report.DEFINITIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats
from scipy.spatial import distance

from rvz.compare.outputs import OutputSpec
from rvz.compare.quality import Comparison, LabelQuality, NumberQuality
from rvz.report.arrays import (
    ERROR,
    F32,
    F64,
    HAS_WINDOW,
    I32,
    I64,
    LATE,
    NO_LABEL,
    ON_TIME,
    ORPHAN,
    U8,
    Bools,
    ModelArrays,
    ModelKey,
)
from rvz.report.data import LogData
from rvz.report.judged import NOT_JUDGED, Judgement, champion_of, judge
from rvz.report.timeline import Marker, markers, notes

OutputKind = Literal["label", "number", "none"]
QUANTILES = (1, 5, 25, 50, 75, 95, 99)
ROLE_ORDER = {"champion": 0, "challenger": 1, "canary": 2}


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Agreement:
    reference: Literal["champion", "answered"]
    kind: Literal["label", "number"]
    pairs: int
    same_label_pct: float | None = None
    mean_abs_diff: float | None = None
    pearson_r: float | None = None


@dataclass(frozen=True)
class Distribution:
    reference: str | None  # the canary, "name:version"
    quantiles: dict[str, float] | None  # "1".."99" (percent) -> value, over the model's numbers
    label_pct: dict[str, float] | None  # label -> % of the model's labels
    divergence_metric: Literal["ks", "jensen_shannon"] | None
    divergence: float | None
    ks_pvalue: float | None = None


@dataclass(frozen=True)
class WindowShare:
    """The live scores judged against one window end (roles and policies change), and how many were on time."""

    window_ms: float
    scores: int
    on_time_pct: float


@dataclass(frozen=True)
class ModelReport:
    name: str
    version: str
    role: str
    roles: list[str]
    role_scores: dict[str, int]  # role at the time -> scores
    replayed: bool
    requests_seen: int
    scores: int
    errors: int
    error_rate: float | None
    late: int
    orphans: int
    latency_basis: Literal["arrival", "compute"]
    latency_ms: Percentiles | None
    compute_ms: Percentiles | None
    window_ms: float | None  # the window most of its scores were judged by
    on_time_pct: float | None
    on_time_windows: list[WindowShare]
    times_chosen: int | None
    output_kind: OutputKind
    not_compared: int  # successful outputs that gave neither a label nor a number
    not_compared_shape: str | None
    agreement: Agreement | None
    distribution: Distribution
    truths: int  # requests it scored that have a truth
    quality: LabelQuality | NumberQuality | None
    vs_champion: Comparison | None


@dataclass(frozen=True)
class Series:
    """What the plots need beyond the figures: the samples behind them."""

    latency_ms: F64
    numbers: F64
    agreement_ns: I64  # request received time of each compared pair
    agreement: F64  # 100 * same label, or absolute difference, per pair


@dataclass(frozen=True)
class ModelStats:
    report: ModelReport
    series: Series
    judgement: Judgement = NOT_JUDGED


@dataclass(frozen=True)
class UseCaseReport:
    use_case: str
    requests: int
    outcomes: dict[str, int]  # Outcome.label (answered | default | timeout | failed) -> results
    first_ns: int | None
    last_ns: int | None
    canary: str | None
    models: list[ModelStats] = field(default_factory=list)
    outputs: str = ""  # how outputs were read (declared, or the conventional shapes)
    champion: str | None = None  # the champion of the latest request, which the others are compared with
    truths: int = 0  # requests with a truth
    markers: list[Marker] = field(default_factory=list)  # policy changes and promotions, by request time
    notes: list[str] = field(default_factory=list)  # what could not be compared or said, and why


def summarize(data: LogData) -> list[UseCaseReport]:
    """One report per use case, in name order."""
    names = set(data.use_cases) | set(data.outcomes) | {m.key.use_case for m in data.models}
    return [_use_case(data, name) for name in sorted(names)]


def _use_case(data: LogData, use_case: str) -> UseCaseReport:
    models = sorted((m for m in data.models if m.key.use_case == use_case), key=_order)
    canary = _canary(models)
    rows = data.use_case_code == data.use_cases.index(use_case) if use_case in data.use_cases else \
        np.zeros(data.received_ns.size, np.bool_)
    times = data.received_ns[rows]
    stats = [_model(data, m, canary) for m in models]
    kind = _use_case_kind(data, use_case, stats)
    champion = champion_of(data, use_case, models)
    judged = judge(data, models, kind, champion)
    stats = [_judged(s, judged.get(m.code, NOT_JUDGED)) for s, m in zip(stats, models, strict=True)]
    report = UseCaseReport(
        use_case=use_case,
        requests=int(times.size),
        outcomes=dict(sorted((o.label, n) for o, n in data.outcomes.get(use_case, {}).items())),
        first_ns=int(times.min()) if times.size else None,
        last_ns=int(times.max()) if times.size else None,
        canary=_label(canary.key) if canary else None,
        models=stats, outputs=data.outputs.get(use_case, OutputSpec()).describe(),
        champion=_label(champion.key) if champion else None,
        truths=int(np.count_nonzero(rows & ((data.truth_label != NO_LABEL) | np.isfinite(data.truth_number)))),
        markers=markers(data, use_case, rows, models),
    )
    report.notes.extend(notes(data, report))
    return report


def _use_case_kind(data: LogData, use_case: str, stats: list[ModelStats]) -> Literal["label", "number"] | None:
    """The declared kind, else the kind of most models' outputs (None: neither labels nor numbers)."""
    spec = data.outputs.get(use_case)
    if spec is not None and spec.kind is not None:
        return spec.kind
    kinds = [s.report.output_kind for s in stats if s.report.output_kind != "none"]
    if not kinds:
        return None
    return "label" if kinds.count("label") >= kinds.count("number") else "number"


def _judged(stats: ModelStats, judgement: Judgement) -> ModelStats:
    report = replace(stats.report, truths=judgement.n, quality=judgement.quality, vs_champion=judgement.vs_champion)
    return ModelStats(report, stats.series, judgement)


def _order(m: ModelArrays) -> tuple[bool, int, str, str]:
    return m.key.replayed, ROLE_ORDER.get(m.role, 3), m.key.name, m.key.version


def _label(key: ModelKey) -> str:
    return f"{key.name}:{key.version}"


def _canary(models: list[ModelArrays]) -> ModelArrays | None:
    # The live model that scored most as a canary: the reference distribution.
    canaries = [m for m in models if not m.key.replayed and m.roles.get("canary")]
    return max(canaries, key=lambda m: m.roles["canary"], default=None)


def _model(data: LogData, m: ModelArrays, canary: ModelArrays | None) -> ModelStats:
    ok = (m.flags & ERROR) == 0
    known = ok & (m.row >= 0)
    latency = (m.compute_ms if m.key.replayed else m.arrival_ms)[known].astype(np.float64)
    kind = _kind(m, ok)
    agreement, agreement_ns, agreement_values = _agreement(data, m, known, kind)
    errors = int(np.count_nonzero(~ok))
    report = ModelReport(
        name=m.key.name, version=m.key.version, role=m.role, roles=sorted(m.roles),
        role_scores=dict(m.roles.most_common()), replayed=m.key.replayed,
        requests_seen=int(np.unique(m.row[m.row >= 0]).size), scores=int(m.row.size), errors=errors,
        error_rate=errors / m.row.size if m.row.size else None,
        late=int(np.count_nonzero(m.flags & LATE)), orphans=int(np.count_nonzero(m.flags & ORPHAN)),
        latency_basis="compute" if m.key.replayed else "arrival",
        latency_ms=_percentiles(latency), compute_ms=_percentiles(m.compute_ms[ok].astype(np.float64)),
        window_ms=None if m.key.replayed else _main_window(m.window_ms[known]),
        on_time_pct=None if m.key.replayed else _on_time(m.flags[known]),
        on_time_windows=[] if m.key.replayed else _on_time_windows(m.window_ms[known], m.flags[known]),
        times_chosen=None if m.key.replayed else data.chosen.get(m.key, 0),
        output_kind=kind, not_compared=m.unreadable, not_compared_shape=m.unreadable_shape or None,
        agreement=agreement, distribution=_distribution(data, m, ok, kind, canary),
        truths=0, quality=None, vs_champion=None,
    )
    numbers = m.number[ok]
    return ModelStats(report, Series(np.sort(latency[np.isfinite(latency)]), numbers[np.isfinite(numbers)],
                                     agreement_ns, agreement_values))


def _percentiles(values: F64) -> Percentiles | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return Percentiles(float(p50), float(p95), float(p99))


def _main_window(windows: F32) -> float | None:
    windows = windows[np.isfinite(windows)]
    if not windows.size:
        return None
    values, counts = np.unique(windows, return_counts=True)
    return float(values[np.argmax(counts)])


def _on_time_windows(windows: F32, flags: U8) -> list[WindowShare]:
    judged = np.isfinite(windows)
    shares = []
    for window in np.unique(windows[judged]):
        at = judged & (windows == window)
        shares.append(WindowShare(float(window), int(np.count_nonzero(at)),
                                  100.0 * np.count_nonzero(flags[at] & ON_TIME) / np.count_nonzero(at)))
    return shares


def _on_time(flags: U8) -> float | None:
    timed = np.count_nonzero(flags & HAS_WINDOW)
    return 100.0 * np.count_nonzero(flags & ON_TIME) / timed if timed else None


def _kind(m: ModelArrays, ok: Bools) -> OutputKind:
    labels = int(np.count_nonzero(m.label[ok] != NO_LABEL))
    numbers = int(np.count_nonzero(np.isfinite(m.number[ok])))
    if labels and labels >= numbers:
        return "label"
    return "number" if numbers else "none"


def _agreement(data: LogData, m: ModelArrays, known: Bools, kind: OutputKind) -> tuple[Agreement | None, I64, F64]:
    none = None, data.received_ns[:0], np.empty(0)
    if kind == "none":
        return none
    rows = m.row[known]
    if m.key.replayed:  # not live then: judged against what the caller actually got
        reference: Literal["champion", "answered"] = "answered"
        ref_model, ref_label, ref_number = data.answered_model, data.answered_label, data.answered_number
    else:
        reference = "champion"
        ref_model, ref_label, ref_number = data.champion_model, data.champion_label, data.champion_number
    pair = (ref_model[rows] >= 0) & (ref_model[rows] != m.code)  # never against itself
    if kind == "label":
        mine_l, theirs_l = m.label[known], ref_label[rows]
        pair &= (mine_l != NO_LABEL) & (theirs_l != NO_LABEL)
        values = 100.0 * (mine_l[pair] == theirs_l[pair])
        if not values.size:
            return none
        result = Agreement(reference, "label", int(values.size), same_label_pct=float(values.mean()))
    else:
        mine, theirs = m.number[known], ref_number[rows]
        pair &= np.isfinite(mine) & np.isfinite(theirs)
        values = np.abs(mine[pair] - theirs[pair])
        if not values.size:
            return none
        result = Agreement(reference, "number", int(values.size), mean_abs_diff=float(values.mean()),
                           pearson_r=_pearson(mine[pair], theirs[pair]))
    return result, data.received_ns[rows[pair]], values


def _pearson(x: F64, y: F64) -> float | None:
    # Undefined for fewer than two pairs or a constant side (numpy would warn and return nan).
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _distribution(data: LogData, m: ModelArrays, ok: Bools, kind: OutputKind,
                  canary: ModelArrays | None) -> Distribution:
    numbers, labels = _outputs(m, ok)
    quantiles = None
    if numbers.size:
        quantiles = {str(q): float(v) for q, v in zip(QUANTILES, np.percentile(numbers, QUANTILES), strict=True)}
    reference = _label(canary.key) if canary else None
    base = Distribution(reference, quantiles, _label_pct(labels, data.labels), None, None)
    if canary is None or canary is m:
        return base
    canary_numbers, canary_labels = _outputs(canary, (canary.flags & ERROR) == 0)
    if kind == "number" and numbers.size and canary_numbers.size:
        # The statistic is exact whatever the method; "asymp" only avoids a slow exact p-value for big samples.
        ks = stats.ks_2samp(numbers, canary_numbers, method="asymp")
        return Distribution(reference, quantiles, base.label_pct, "ks", float(ks.statistic), float(ks.pvalue))
    if kind == "label" and labels.size and canary_labels.size:
        n = len(data.labels)
        with np.errstate(invalid="ignore"):  # rounding can leave a -1e-17 under the square root: that is 0
            js = distance.jensenshannon(np.bincount(labels, minlength=n), np.bincount(canary_labels, minlength=n),
                                        base=2)
        return Distribution(reference, quantiles, base.label_pct, "jensen_shannon",
                            float(js) if np.isfinite(js) else 0.0)
    return base


def _outputs(m: ModelArrays, ok: Bools) -> tuple[F64, I32]:
    numbers, labels = m.number[ok], m.label[ok]
    return numbers[np.isfinite(numbers)], labels[labels != NO_LABEL]


def _label_pct(labels: I32, names: list[str]) -> dict[str, float] | None:
    if not labels.size:
        return None
    counts = np.bincount(labels, minlength=len(names))
    return {names[i]: 100.0 * float(counts[i]) / labels.size for i in sorted(np.flatnonzero(counts),
                                                                              key=lambda i: names[i])}
