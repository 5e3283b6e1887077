"""The one HTML report writer: the run report, the evaluation report and the ablation page.

Every page shares one style and one vocabulary, so a reader meets the same words everywhere:
what each score is (AUROC, or the organisers' blend with novelty and diversity), that Δ is taken
against `counts`, what each reference row stands for, that the oracle is a ceiling rather than
an entry to beat, and where the organisers' rule — a label with no validation positive scores
AUROC 0 and still counts in the average — holds a task's score down. Pages are self-contained
(plots inline: PNG, and hand-drawn SVG on the evaluation page) and written atomically through `ubp.io`.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from ubp.io import write_text
from ubp.layout import PROPENSITY_TASKS

Means = dict[str, dict[str, tuple[float, float]]]  # entry → task → (mean, std over runs)

REFERENCE = "counts"  # every Δ of a run report is taken against this row
MIN_GAP = 0.01  # a baseline → oracle gap narrower than this gives no meaningful share
CEILING = "oracle"
ENTRY = "profile"

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.best{font-weight:bold;background:#e8f5e9}.ceiling td{color:#777;font-style:italic;background:#fafafa}
.lead{font-size:120%;padding:.6em 1em;background:#eef4fb;border-left:4px solid #4c72b0}
.warn{padding:.5em 1em;background:#fff4e5;border-left:4px solid #e69500}
.note{color:#555;font-size:90%}small{color:#555;white-space:nowrap;font-size:80%}img{max-width:100%}
.scores td{white-space:nowrap}caption{caption-side:top;text-align:left;color:#555;padding-bottom:.3em}
"""

REFERENCE_ROWS = {
    ENTRY: "the profile your recipe builds",
    "random": "Gaussian noise per client: the floor (above 0.5, because the downstream network memorises "
              "clients whose behaviour persists from the train window to the validation window)",
    "baseline": "the organisers' aggregated-features baseline",
    "counts": "plain counts (top categories, SKUs and price buckets; recency and frequency): every Δ is against this row",
    CEILING: "the synthetic world's hidden user state: a ceiling for this world, not an entry to beat",
}


def score_definition(task: str) -> str:
    """What a task's score is, in the organisers' words."""
    if task in PROPENSITY_TASKS:
        return "0.8·AUROC + 0.1·novelty + 0.1·diversity (the organisers' blend; AUROC macro-averaged over the labels)"
    return "AUROC"


def task_means(scores: dict) -> dict[str, tuple[float, float]]:
    """Per task (mean, std over runs) from a scores.json document."""
    return {task: (float(rec["score"]), float(rec.get("std", 0.0))) for task, rec in scores["tasks"].items()}


def headline(means: Means, entry: str = ENTRY, reference: str = REFERENCE) -> str | None:
    """The one sentence a report leads with: how often and by how much `entry` beats `reference`,
    and the share of the baseline → oracle gap it closes (when both are there)."""
    if entry not in means or reference not in means:
        return None
    tasks = list(means[entry])
    deltas = [means[entry][t][0] - means[reference][t][0] for t in tasks]
    wins = sum(d > 0 for d in deltas)
    sentence = (f"The {entry} beats {reference} on {wins} of {len(tasks)} tasks, "
                f"by {np.mean(deltas):+.3f} on average")
    share = average_gap_share(means, entry)
    if share is not None:
        sentence += f"; it closes {share:.0%} of the baseline → oracle gap"
    return sentence + "."


def gap_shares(means: Means, entry: str = ENTRY) -> dict[str, float] | None:
    """Per task, (entry − baseline) / (oracle − baseline), NaN where the gap is under MIN_GAP;
    None without both references."""
    if not {"baseline", CEILING, entry} <= set(means):
        return None
    out = {}
    for task, (score, _) in means[entry].items():
        low, high = means["baseline"][task][0], means[CEILING][task][0]
        out[task] = (score - low) / (high - low) if high - low >= MIN_GAP else float("nan")
    return out


def average_gap_share(means: Means, entry: str = ENTRY) -> float | None:
    """The share of the gap between the average scores (a task with a near-zero gap cannot blow it up)."""
    if not {"baseline", CEILING, entry} <= set(means):
        return None
    low, high, score = (float(np.mean([v[0] for v in means[k].values()])) for k in ("baseline", CEILING, entry))
    return (score - low) / (high - low) if high - low >= MIN_GAP else None


def zero_auroc_warnings(scores: dict) -> list[str]:
    """One line per task where labels with no validation positive score AUROC 0 (organisers' rule)."""
    out = []
    for task, rec in scores["tasks"].items():
        n_labels = int(rec.get("n_labels", 1))
        with_positive = int(rec.get("labels_with_validation_positive", n_labels))
        missing = n_labels - with_positive
        if missing <= 0:
            continue
        if n_labels == 1:
            out.append(f"{task}: no client is positive in the validation window, so its AUROC is 0 by the "
                       "organisers' rule whatever the profile; the score says nothing about the profile.")
        else:
            cap = with_positive / n_labels
            out.append(f"{task}: {missing} of {n_labels} labels have no positive client in the validation window; "
                       "by the organisers' rule each scores AUROC 0 and still counts in the average, so this "
                       f"task's AUROC is at most {cap:.2f} for any profile.")
    return out


def score_table(means: Means, reference: str | None = REFERENCE, ceiling: str | None = CEILING) -> str:
    """Entries × tasks (mean ± std) and the average; the best non-ceiling entry of each column in
    bold, the ceiling row set apart, each row's Δ against `reference` under its score."""
    tasks = list(next(iter(means.values())))
    avg = {name: float(np.mean([m[t][0] for t in tasks])) for name, m in means.items()}
    contenders = {n: m for n, m in means.items() if n != ceiling} or means
    best = {t: max(m[t][0] for m in contenders.values()) for t in tasks} | {"average": max(avg[n] for n in contenders)}
    head = "".join(f"<th>{html.escape(t)}</th>" for t in tasks)
    caption = (f"<caption>mean ± std over runs; under each score, its difference Δ against <b>{html.escape(reference)}</b>"
               + ("; best of each column in green (the ceiling row excluded)" if ceiling in means else "; best of each column in green")
               + "</caption>") if reference in means else ""
    rows = [f"<table class='scores'>{caption}<tr><th>entry</th>{head}<th>average</th></tr>"]
    for name, m in means.items():
        cells = []
        for t, mean in [*((t, m[t][0]) for t in tasks), ("average", avg[name])]:
            cls = ' class="best"' if name != ceiling and mean == best[t] else ""
            std = f" ± {m[t][1]:.3f}" if t != "average" else ""
            delta = ""
            if reference in means and name != reference:
                ref = means[reference][t][0] if t != "average" else avg[reference]
                delta = f"<br><small>Δ {mean - ref:+.3f}</small>"
            cells.append(f"<td{cls}>{mean:.3f}{std}{delta}</td>")
        label = html.escape(name) + (" <small>(ceiling)</small>" if name == ceiling else " <small>(reference)</small>" if name == reference else "")
        row_cls = ' class="ceiling"' if name == ceiling else ""
        rows.append(f"<tr{row_cls}><td>{label}</td>{''.join(cells)}</tr>")
    rows.append("</table>")
    return "".join(rows)


def text_table(means: Means) -> str:
    """The score table as plain text (what `ubp run` prints at its end)."""
    tasks = list(next(iter(means.values())))
    width = max(len(f"{n} (ceiling)" if n == CEILING else n) for n in means) + 2
    lines = [" " * width + "".join(f"{t.removeprefix('propensity_'):>12}" for t in tasks) + f"{'average':>12}"]
    for name, m in means.items():
        avg = np.mean([m[t][0] for t in tasks])
        label = f"{name} (ceiling)" if name == CEILING else name
        lines.append(f"{label:<{width}}" + "".join(f"{m[t][0]:>12.3f}" for t in tasks) + f"{avg:>12.3f}")
    return "\n".join(lines)


def explained_rows(names: list[str]) -> str:
    items = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(REFERENCE_ROWS[n])}</li>" for n in names if n in REFERENCE_ROWS)
    return f"<ul>{items}</ul>" if items else ""


def score_definitions(tasks: list[str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(t)}</td><td style='text-align:left'>{score_definition(t)}</td></tr>" for t in tasks)
    return (f"<table><tr><th>task</th><th style='text-align:left'>what its score is</th></tr>{rows}</table>"
            "<p class='note'>Scores are the best of the downstream network's epochs on the validation window; "
            "over several runs (behaviour-free row order k, network seed 1278+k), their mean ± std.</p>")


def gap_table(means: Means, entry: str = ENTRY) -> str:
    shares = gap_shares(means, entry)
    if shares is None:
        return "<p class='note'>The share of the baseline → oracle gap needs the baseline and oracle rows.</p>"
    head = "".join(f"<th>{html.escape(t)}</th>" for t in shares)
    cells = "".join(f"<td>{'–' if math.isnan(s) else f'{s:.0%}'}</td>" for s in shares.values())
    average = average_gap_share(means, entry)
    return (f"<table><tr><th></th>{head}<th>average scores</th></tr><tr><td>{html.escape(entry)}</td>{cells}"
            f"<td>{'–' if average is None else f'{average:.0%}'}</td></tr></table>"
            f"<p class='note'>(entry − baseline) / (oracle − baseline) per task; – where the oracle is less than "
            f"{MIN_GAP} above the baseline. The last column takes the share between the average scores.</p>")


def warnings_block(lines: list[str]) -> str:
    return "".join(f"<p class='warn'>⚠ {html.escape(w)}</p>" for w in lines)


def page(title: str, parts: list[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def scores_plot(means: Means, title: str) -> str:
    from ubp.plots import grouped_bars

    return grouped_bars({k: {t: v[0] for t, v in m.items()} for k, m in means.items()},
                        {k: {t: v[1] for t, v in m.items()} for k, m in means.items()}, title)


# ----- the pages --------------------------------------------------------------------------------

def write_run_report(
    out: Path, profile: dict, scores: dict[str, dict], stages: list[dict], window, entry_dir: Path, mode: str,
) -> Path:
    """`out/report.html` and `out/summary.json` of a `ubp run`."""
    from ubp.plots import run_diagnostics

    means = {name: task_means(s) for name, s in scores.items()}
    absent = window.absent_event_types
    lead = headline(means)
    first = scores.get(ENTRY) or next(iter(scores.values()))
    parts = [
        "<h1>Universal Behavioral Profile — run report</h1>",
        f"<p class='lead'>{html.escape(lead)}</p>" if lead else "",
        warnings_block(zero_auroc_warnings(first)),
        f"<p>{profile['n_clients']:,} clients × {profile['width']} columns; {window.n_events:,} input-window events "
        f"before {window.cutoff:%Y-%m-%d}; evaluation mode <b>{mode}</b>, {first['n_orders']} run(s).</p>",
        f"<p>Event types absent from the log: <b>{', '.join(absent) if absent else 'none'}</b>"
        + (" (their features are zeros)." if absent else ".") + "</p>",
        _no_history_line(profile),
        "<h2>Scores</h2>", score_table(means), explained_rows(list(means)),
        "<h3>What each score is</h3>", score_definitions(list(next(iter(means.values())))),
        scores_plot(means, "score per task (axis from 0.5)"),
        "<h2>Share of the baseline → oracle gap closed</h2>", gap_table(means),
        "<h2>Blocks</h2>", _block_table(profile),
    ]
    ablation_path = Path(out) / "ablation.json"
    if ablation_path.is_file():
        ablation = {k: {t: tuple(v) for t, v in m.items()} for k, m in json.loads(ablation_path.read_text()).items()}
        parts += ["<h2>Per-block contributions (leave one out, from <code>ubp ablate</code>)</h2>",
                  score_table(ablation, reference="all", ceiling=None)]
    parts += [
        "<h2>Stages</h2>", _stage_table(stages),
        "<h2>Diagnostics</h2>", run_diagnostics(entry_dir, profile, window),
        f"<p class='note'>config hash {profile['config_hash']}, ubp {profile['package_version']}</p>",
    ]
    path = Path(out) / "report.html"
    write_text(path, page("ubp run report", parts))
    summary = {"headline": lead, "scores": {k: {t: list(v) for t, v in m.items()} for k, m in means.items()},
               "warnings": zero_auroc_warnings(first), "stages": stages, "profile": profile}
    write_text(Path(out) / "summary.json", json.dumps(summary, indent=1, default=str))  # row order kept
    return path


def run_summary(out: Path) -> str:
    """The sentence and the score table of a finished run (from its summary.json)."""
    summary = json.loads((Path(out) / "summary.json").read_text())
    means = {k: {t: tuple(v) for t, v in m.items()} for k, m in summary["scores"].items()}
    lines = [summary["headline"] or "", "", text_table(means)]
    lines += [f"warning: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines).strip("\n")


def write_evaluation_report(scores: dict, path: Path) -> None:
    """`report.html` of `ubp evaluate`: one entry's scores, what they are, and their epochs."""
    from ubp.plots import evaluation_plot

    head = ("task", "score is", "score", "std", "min", "max", "AUROC*", "novelty*", "diversity*",
            "clients", "labels with a validation positive", "seconds")
    rows = []
    for task, rec in scores["tasks"].items():
        run = rec["runs"][0]
        best = run["epochs"][run["best_epoch"]]
        n_labels = rec.get("n_labels", 1)
        cells = (task, "blend" if task in PROPENSITY_TASKS else "AUROC", _fmt(rec["score"]), _fmt(rec["std"]), _fmt(rec["min"]), _fmt(rec["max"]),
                 _fmt(best["auroc"]), _fmt(best["novelty"]), _fmt(best["diversity"]), rec["n_clients"],
                 f"{rec.get('labels_with_validation_positive', n_labels)} of {n_labels}", f"{rec['wall_s']:.1f}")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    meta = {k: scores[k] for k in ("entry", "data_dir", "mode", "device", "n_clients", "embedding_width",
                                   "missing_relevant_clients", "order_fingerprint", "n_orders",
                                   "package_version", "torch_version")}
    meta_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    parts = [
        f"<h1>ubp evaluation of {html.escape(scores['entry'])}</h1>",
        warnings_block(zero_auroc_warnings(scores)),
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{''.join(rows)}</table>",
        "<p class='note'>* at the best epoch of the first run.</p>",
        score_definitions(list(scores["tasks"])),
        evaluation_plot(scores), f"<table>{meta_rows}</table>",
    ]
    write_text(path, page(f"ubp evaluation: {scores['entry']}", parts))


def write_ablation_report(path: Path, means: Means, mode: str, orders: int) -> None:
    """`ablation.html`: each variant beside the full recipe (Δ against `all`)."""
    parts = [f"<h1>Ablation ({html.escape(mode)} mode, {orders} run(s): row order and network seed)</h1>",
             "<p>Each row leaves one block (or one objective) out of the recipe; Δ is against <b>all</b>, "
             "the full recipe, so a negative Δ is what the left-out part adds.</p>",
             score_table(means, reference="all", ceiling=None), score_definitions(list(next(iter(means.values())))),
             scores_plot(means, "ablation (axis from 0.5)")]
    write_text(path, page("ubp ablation", parts))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _no_history_line(profile: dict) -> str:
    n = profile.get("no_history_clients", 0)
    if not n:
        return ""
    return (f"<p class='warn'>⚠ {n:,} clients have no event in the input window: each block gives them its "
            f"empty-history row and column {profile['no_history_column']} (no_history) is 1 for them.</p>")


def _stage_table(stages: list[dict]) -> str:
    rows = "".join(f"<tr><td>{s['stage']}</td><td>{s['seconds']:.1f}</td><td>{s['cpu_seconds']:.1f}</td>"
                   f"<td>{s['peak_rss_mib']:.0f}</td></tr>" for s in stages)
    return ("<table><tr><th>stage</th><th>seconds</th><th>CPU seconds</th><th>peak RSS (MiB)</th></tr>"
            f"{rows}</table>")


def _block_table(profile: dict) -> str:
    rows = []
    for b in profile["blocks"]:
        fit = profile["block_fit_seconds"].get(b["name"], 0.0)
        cached = "cached" if b["name"] in profile["cached_blocks"] else f"{fit:.1f} s"
        rows.append(f"<tr><td>{b['name']}</td><td>{b['columns'][0]}–{b['columns'][1]}</td><td>{b['in_dim']}</td>"
                    f"<td>{b['normalise']}</td><td>{b['weight']}</td><td>{cached}</td></tr>")
    return ("<table><tr><th>block</th><th>columns</th><th>raw width</th><th>normalisation</th><th>weight</th>"
            f"<th>fit</th></tr>{''.join(rows)}</table>")
