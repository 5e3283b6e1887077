"""The report writer: its lead sentence, the AUROC-0 warning, the labelled Δ and the ceiling row."""

from __future__ import annotations

from pathlib import Path

from ubp.layout import TASKS
from ubp.report import headline, score_table, text_table, write_evaluation_report, zero_auroc_warnings

# The README's small-world table (quick mode): baseline, counts, default profile, oracle.
ROWS = {
    "profile": (.658, .740, .758, .622, .602, .759),
    "random": (.532, .522, .577, .506, .479, .581),
    "baseline": (.590, .647, .685, .501, .503, .689),
    "counts": (.644, .720, .751, .623, .583, .740),
    "oracle": (.721, .801, .802, .665, .639, .800),
}
MEANS = {name: {t: (v, 0.005) for t, v in zip(TASKS, row)} for name, row in ROWS.items()}


def task_record(n_labels: int, with_positive: int) -> dict:
    epoch = {"auroc": 0.4, "novelty": 0.9, "diversity": 0.5, "score": 0.46}
    return {"score": 0.46, "std": 0.0, "min": 0.46, "max": 0.46, "n_clients": 50, "n_labels": n_labels,
            "n_positives": {"train": 9, "validation": with_positive}, "labels_with_validation_positive": with_positive,
            "wall_s": 1.0, "runs": [{"order": "entry", "seed": 1278, "score": 0.46, "best_epoch": 0, "epochs": [epoch]}]}


def scores_doc() -> dict:
    return {
        "entry": "E", "data_dir": "W", "mode": "quick", "device": "cpu", "n_clients": 50, "embedding_width": 8,
        "missing_relevant_clients": 0, "order_fingerprint": "abc", "n_orders": 1, "package_version": "0",
        "torch_version": "2", "tasks": {"churn": task_record(1, 0), "conversion": task_record(1, 1),
                                        "propensity_sku": task_record(100, 63), "propensity_category": task_record(100, 100)},
    }


def test_headline_counts_wins_mean_delta_and_gap_closed() -> None:
    deltas = [p - c for p, c in zip(ROWS["profile"], ROWS["counts"])]
    share = (sum(ROWS["profile"]) - sum(ROWS["baseline"])) / (sum(ROWS["oracle"]) - sum(ROWS["baseline"]))
    expected = (f"The profile beats counts on 5 of 6 tasks, by {sum(deltas) / 6:+.3f} on average; "
                f"it closes {share:.0%} of the baseline → oracle gap.")
    assert headline(MEANS) == expected == "The profile beats counts on 5 of 6 tasks, by +0.013 on average; it closes 64% of the baseline → oracle gap."
    without_oracle = {k: v for k, v in MEANS.items() if k != "oracle"}
    assert headline(without_oracle) == "The profile beats counts on 5 of 6 tasks, by +0.013 on average."
    assert headline({"profile": MEANS["profile"]}) is None
    flat = {**MEANS, "oracle": {t: (v + 0.005, 0.0) for t, (v, _) in MEANS["baseline"].items()}}
    assert headline(flat).endswith("by +0.013 on average.")  # no share of a gap narrower than 0.01


def test_labels_without_a_validation_positive_are_warned_about() -> None:
    warnings = zero_auroc_warnings(scores_doc())
    assert len(warnings) == 2
    assert warnings[0].startswith("churn: no client is positive in the validation window, so its AUROC is 0")
    assert warnings[1].startswith("propensity_sku: 37 of 100 labels have no positive client in the validation window")
    assert "at most 0.63 for any profile" in warnings[1]


def test_evaluation_report_explains_scores_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_evaluation_report(scores_doc(), path)
    page = path.read_text()
    assert "0.8·AUROC + 0.1·novelty + 0.1·diversity" in page and "<td>AUROC</td>" in page
    assert "37 of 100 labels have no positive client" in page and "63 of 100" in page
    assert "<svg" in page and "</svg>" in page


def test_score_table_labels_delta_and_marks_the_oracle_as_a_ceiling() -> None:
    table = score_table(MEANS)
    assert "difference Δ against <b>counts</b>" in table and "Δ +0.014" in table and "oracle <small>(ceiling)</small>" in table
    ceiling_row = table.split('<tr class="ceiling">')[1].split("</tr>")[0]
    assert 'class="best"' not in ceiling_row  # the best of each column is among the entries, never the oracle
    assert table.count('class="best"') == 7  # six tasks and the average
    assert "oracle (ceiling)" in text_table(MEANS)
