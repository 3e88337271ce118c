"""Scores of weekly flags against true exposure, the acceptance bands, and the report (pure).

Inputs are frames indexed by (staff_ref, programme_week): the issued flags (level codes -1 insufficient / not
evaluated, 0 green, 1 amber, 2 red, per criterion and overall) and :func:`risk.validation.truth.true_levels`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from risk.validation.truth import VALIDATED

__all__ = ["BANDS", "CohortScore", "Summary", "render_markdown", "render_svg", "score_cohort", "summarise"]

NAMES = {-1: "insufficient", 0: "green", 1: "amber", 2: "red"}
#: Acceptance bands of issue 14 (3 seeds x 60 officers x 120 days, default faults).
BANDS: dict[str, tuple[float, float]] = {
    "red_precision": (0.90, 1.0), "amber_or_red_recall": (0.90, 1.0), "red_share": (0.03, 0.15),
    "green_share": (0.40, 1.0), "fault_red_shift_points": (0.0, 2.0), "weeks_raised_by_faults": (0.0, 0.0),
    "at_risk_red_ratio": (3.0, float("inf"))}


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def _confusion(flag: pd.Series, true: pd.Series) -> dict[str, dict[str, int]]:
    tab = pd.crosstab(flag.map(NAMES), true.map(NAMES))
    return {str(r): {str(c): int(tab.loc[r, c]) for c in tab.columns} for r in tab.index}


@dataclass(frozen=True)
class CohortScore:
    """Scores of one seeded cohort (flags with faults, and the same seed without faults)."""

    seed: int
    weeks: int
    confusion: dict[str, dict[str, int]]
    per_criterion: dict[str, dict[str, Any]]
    red_precision: float
    amber_or_red_recall: float
    shares: dict[str, float]
    red_share_no_faults: float
    weeks_raised_by_faults: int
    red_rate_at_risk: float
    red_rate_others: float
    raised_by_criterion: dict[str, int] = field(default_factory=dict)


def score_cohort(seed: int, flags: pd.DataFrame, clean: pd.DataFrame, truth: pd.DataFrame) -> CohortScore:
    """Score one cohort.

    Parameters
    ----------
    seed : int
        Simulation seed.
    flags, clean : DataFrame
        Issued flags with faults and without faults (same seed), index (staff_ref, programme_week), columns
        ``overall`` and the criterion codes.
    truth : DataFrame
        :func:`risk.validation.truth.true_levels` (same index).
    """
    both = flags.merge(truth, left_index=True, right_index=True, suffixes=("", "_true"))
    f, t = both["overall"], both["overall_true"]
    per = {}
    for c in VALIDATED:
        fc, tc = both[c], both[f"{c}_true"]
        ev = (fc >= 0) & (tc >= 0)
        per[c] = {"confusion": _confusion(fc, tc), "evaluated_share": float(ev.mean()),
                  "red_precision": _ratio(((fc == 2) & (tc == 2) & ev).sum(), ((fc == 2) & ev).sum()),
                  "amber_or_red_recall": _ratio(((fc >= 1) & (tc >= 1) & ev).sum(), ((tc >= 1) & ev).sum())}
    shares = {NAMES[k]: float((f == k).mean()) for k in NAMES}
    pair = flags.merge(clean, left_index=True, right_index=True, suffixes=("", "_clean"))
    up = pair[pair["overall"] > pair["overall_clean"]]
    raised = {c: int((up[c] > up[f"{c}_clean"]).sum()) for c in VALIDATED if c in up and f"{c}_clean" in up}
    risk = both["at_risk"].to_numpy(bool)
    return CohortScore(
        seed=seed, weeks=len(both), confusion=_confusion(f, t), per_criterion=per,
        red_precision=_ratio(((f == 2) & (t == 2)).sum(), (f == 2).sum()),
        amber_or_red_recall=_ratio(((f >= 1) & (t >= 1)).sum(), (t >= 1).sum()),
        shares=shares, red_share_no_faults=float((clean["overall"] == 2).mean()),
        weeks_raised_by_faults=int((pair["overall"] > pair["overall_clean"]).sum()),
        red_rate_at_risk=float((f[risk] == 2).mean()) if risk.any() else float("nan"),
        red_rate_others=float((f[~risk] == 2).mean()) if (~risk).any() else float("nan"),
        raised_by_criterion={k: v for k, v in raised.items() if v})


@dataclass(frozen=True)
class Summary:
    """Pooled figures over cohorts and the band verdicts."""

    figures: dict[str, float]
    passed: dict[str, bool]
    cohorts: list[CohortScore] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every band holds."""
        return all(self.passed.values())

    def to_json(self) -> str:
        """JSON text (NaN written as null)."""
        def clean(x: Any) -> Any:
            if isinstance(x, float) and not np.isfinite(x):
                return None if np.isnan(x) else str(x)
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        return json.dumps(clean({"figures": self.figures, "passed": self.passed, "bands": BANDS,
                                 "cohorts": [asdict(c) for c in self.cohorts]}), indent=2, sort_keys=True)


def summarise(cohorts: list[CohortScore]) -> Summary:
    """Pool cohorts (sums of counts, not means of ratios) and check :data:`BANDS`."""
    def pooled(key: str, row: str | None, col: str | None) -> int:
        total = 0
        for c in cohorts:
            conf = c.confusion
            rows = [row] if row else list(conf)
            for r in rows:
                cols = [col] if col else list(conf.get(r, {}))
                total += sum(conf.get(r, {}).get(k, 0) for k in cols)
        return total
    weeks = sum(c.weeks for c in cohorts)
    flagged_red = pooled("", "red", None)
    tp_red = pooled("", "red", "red")
    true_ar = sum(pooled("", r, "amber") + pooled("", r, "red") for r in NAMES.values())
    hit_ar = sum(pooled("", r, c) for r in ("amber", "red") for c in ("amber", "red"))
    share = {k: _ratio(sum(c.shares[k] * c.weeks for c in cohorts), weeks) for k in NAMES.values()}
    red_clean = _ratio(sum(c.red_share_no_faults * c.weeks for c in cohorts), weeks)
    at_risk = np.nanmean([c.red_rate_at_risk for c in cohorts])
    others = np.nanmean([c.red_rate_others for c in cohorts])
    figures = {
        "weeks": float(weeks), "red_precision": _ratio(tp_red, flagged_red),
        "amber_or_red_recall": _ratio(hit_ar, true_ar), "red_share": share["red"], "green_share": share["green"],
        "amber_share": share["amber"], "insufficient_share": share["insufficient"], "red_share_no_faults": red_clean,
        "fault_red_shift_points": abs(share["red"] - red_clean) * 100.0,
        "weeks_raised_by_faults": float(sum(c.weeks_raised_by_faults for c in cohorts)),
        "red_rate_at_risk": float(at_risk), "red_rate_others": float(others),
        "at_risk_red_ratio": _ratio(float(at_risk), float(others))}
    passed = {k: bool(lo <= figures[k] <= hi) for k, (lo, hi) in BANDS.items()}
    return Summary(figures, passed, cohorts)


def render_svg(summary: Summary) -> str:
    """Stacked bars of level shares per cohort (with and without faults): a small self-contained SVG."""
    colours = {"red": "#c0392b", "amber": "#e67e22", "green": "#27ae60", "insufficient": "#95a5a6"}
    bars = []
    for c in summary.cohorts:
        bars.append((f"seed {c.seed}", c.shares))
    w, bar_h, gap, left = 520, 22, 10, 80
    h = len(bars) * (bar_h + gap) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             'font-size="12">', '<title>Share of participant-weeks by flag level</title>']
    for i, (label, shares) in enumerate(bars):
        y = 10 + i * (bar_h + gap)
        parts.append(f'<text x="4" y="{y + 15}">{label}</text>')
        x = float(left)
        for level in ("green", "amber", "red", "insufficient"):
            width = shares.get(level, 0.0) * (w - left - 10)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{bar_h}" '
                         f'fill="{colours[level]}"><title>{level} {shares.get(level, 0.0):.1%}</title></rect>')
            x += width
    y = h - 14
    for k, level in enumerate(("green", "amber", "red", "insufficient")):
        parts.append(f'<rect x="{left + 110 * k}" y="{y - 10}" width="10" height="10" fill="{colours[level]}"/>'
                     f'<text x="{left + 110 * k + 14}" y="{y}">{level}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def render_markdown(summary: Summary, meta: dict[str, Any], figure_name: str) -> str:
    """docs/validation.md: what was run, the definitions, the figures against the bands, per criterion."""
    f = summary.figures
    lines = [
        "# Validation of the weekly flags against ground truth",
        "",
        "Generated by `fatigue validate` (do not edit by hand). " + ", ".join(f"{k}: {v}" for k, v in meta.items()),
        "",
        "Each seeded cohort is simulated, loaded through the ingester's own decode/write path "
        "(`ingest.prepare` + `ingest.writer.Writer`, bypassing only MQTT), then the feature, model and flag jobs "
        "run on a scratch database exactly as in production. The same seed is run again without faults.",
        "",
        f"![Share of participant-weeks by level]({figure_name})",
        "",
        "## Acceptance bands",
        "",
        "| figure | value | band | holds |",
        "|---|---|---|---|",
    ]
    fmt = {"red_precision": _pct, "amber_or_red_recall": _pct, "red_share": _pct, "green_share": _pct}
    for k, (lo, hi) in BANDS.items():
        v = f[k]
        shown = fmt[k](v) if k in fmt else f"{v:.2f}"
        band = f"{lo:g} - {hi:g}" if np.isfinite(hi) else f">= {lo:g}"
        lines.append(f"| {k} | {shown} | {band} | {'yes' if summary.passed[k] else '**no**'} |")
    lines += ["", "## Level shares", "",
              f"green {_pct(f['green_share'])}, amber {_pct(f['amber_share'])}, red {_pct(f['red_share'])}, "
              f"insufficient data {_pct(f['insufficient_share'])} of {int(f['weeks'])} participant-weeks; "
              f"red without faults {_pct(f['red_share_no_faults'])}; weeks whose level faults raised: "
              f"{int(f['weeks_raised_by_faults'])}; red-week rate at-risk {_pct(f['red_rate_at_risk'])} vs "
              f"others {_pct(f['red_rate_others'])}.", "",
              "## Per criterion (pooled over seeds)", "",
              "| criterion | evaluated | red precision | amber-or-red recall |", "|---|---|---|---|"]
    for c in VALIDATED:
        ev = np.mean([s.per_criterion[c]["evaluated_share"] for s in summary.cohorts])
        pr = np.nanmean([s.per_criterion[c]["red_precision"] for s in summary.cohorts]) \
            if any(np.isfinite(s.per_criterion[c]["red_precision"]) for s in summary.cohorts) else float("nan")
        rc = np.nanmean([s.per_criterion[c]["amber_or_red_recall"] for s in summary.cohorts]) \
            if any(np.isfinite(s.per_criterion[c]["amber_or_red_recall"]) for s in summary.cohorts) else float("nan")
        lines.append(f"| {c} | {_pct(float(ev))} | {_pct(float(pr))} | {_pct(float(rc))} |")
    raised: dict[str, int] = {}
    for s in summary.cohorts:
        for k, v in s.raised_by_criterion.items():
            raised[k] = raised.get(k, 0) + v
    lines += ["", "Criteria that faults raised (weeks whose overall level faults raised, by the criterion that rose): "
              + (", ".join(f"{k} {v}" for k, v in sorted(raised.items())) or "none"), ""]
    lines += ["", "## Overall confusion (rows: flag, columns: truth)", ""]
    for s in summary.cohorts:
        lines.append(f"Seed {s.seed}: `{json.dumps(s.confusion, sort_keys=True)}`")
        lines.append("")
    lines += [DEFINITIONS]
    return "\n".join(lines) + "\n"


DEFINITIONS = """## Definition of true exposure

True exposure is the programme's own definition applied to the *true* quantities of the same programme week
(simulator truth tables: no device faults, no measurement error), graded with the programme's thresholds. So
the validation measures what devices, missing data and processing do to a flag, not whether the science table is
right. S1 mean true sleep of the 7 days; S2 the 7-day net debt on day 7 with the programme's need definition
(median true sleep on free days of the calibration window, clipped 7-9 h, else the population need) applied to
the true sleep; S3 mean true efficiency of the main sleeps; H1 the 7-day mean true lnRMSSD against the
programme's personal baseline of the true nightly values (red if below the band this week and last week or with
R1 amber or red); R1 the 7-day mean true resting HR minus its baseline (H1 and R1 not evaluated in calibration
weeks); W1-W3 the true roster; W4 the longest true time awake at a duty's end (true sleep episodes of >= 30 min);
F1 the three-process model driven by the true sleep (a duty with >= 60 min at KSS >= 7 amber, >= 60 min at
KSS >= 8 red). S4 is informative and not validated. The true overall level is the worst of these. A flag of
"insufficient data" counts as neither amber nor red (it lowers recall, never precision).
"""
