"""The oracle: each relevant user's true hidden state at the end of the input window, as an entry.

Scoring it shows how much of the six tasks a perfect profile could explain; every column is
documented in DIR/oracle/README.md, generated from `BLOCKS` so code and doc never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ubp.entry import write_entry
from ubp.synth.catalogue import Catalogue
from ubp.synth.params import N_TOPICS
from ubp.synth.users import N_FAV_CATEGORIES, N_FAV_SKUS, Users

HORIZON = 14  # days ahead for the expected-buys column (one target window)


@dataclass(frozen=True)
class Hidden:
    """What the oracle reads: traits, the active/dormant chain on the last input day, the catalogue."""

    users: Users
    active_last: np.ndarray  # bool: active on the day before the cutoff
    cutoff: int  # first day of the train-target window
    cat: Catalogue


def _expected_buys(h: Hidden) -> np.ndarray:
    """Expected buys over the next HORIZON days: chain occupancy × sessions × events × add × buy rates."""
    u = h.users
    pi = u.p_return / (u.p_return + u.p_quit)
    decay = 1.0 - u.p_quit - u.p_return
    k = np.arange(1, HORIZON + 1)[None, :]
    occupancy = (pi[:, None] + (h.active_last - pi)[:, None] * decay[:, None] ** k).sum(axis=1)
    buys_per_event = u.p_add * (u.repeat * np.minimum(0.95, 1.5 * u.p_buy) + (1 - u.repeat) * u.p_buy)
    return occupancy * u.rate * u.session_len * buys_per_event


Block = tuple[str, int, str, Callable[[Hidden], np.ndarray]]
BLOCKS: list[Block] = [
    ("taste_topic", N_TOPICS, "topic taste on the last input day (sums to 1 over the topics)",
     lambda h: h.users.taste_at(np.arange(len(h.users)), np.full(len(h.users), h.cutoff - 1))),
    ("expected_buys_14d", 1, "expected number of buys in the next 14 days given the state", _expected_buys),
    ("active", 1, "1 if in the active state of the active/dormant chain on the last input day",
     lambda h: h.active_last.astype(float)),
    ("log_rate", 1, "log sessions per active day", lambda h: np.log(h.users.rate)),
    ("log_session_len", 1, "log mean events per session", lambda h: np.log(h.users.session_len)),
    ("log_p_quit", 1, "log daily chance of going dormant", lambda h: np.log(h.users.p_quit)),
    ("log_p_return", 1, "log daily chance of coming back when dormant", lambda h: np.log(h.users.p_return)),
    ("engaged", 1, "1 if from the engaged population", lambda h: h.users.engaged.astype(float)),
    ("tenure_100d", 1, "days since joining at the cutoff / 100 (capped at 4)",
     lambda h: np.minimum(h.cutoff - h.users.join_day, 400) / 100.0),
    ("p_search", 1, "share of session events that are searches", lambda h: h.users.p_search),
    ("p_add", 1, "share of session events that are cart additions", lambda h: h.users.p_add),
    ("p_buy", 1, "chance a cart addition is bought", lambda h: h.users.p_buy),
    ("p_remove", 1, "chance an unbought addition is removed", lambda h: h.users.p_remove),
    ("repeat", 1, "chance an addition is a favourite SKU (re-buy)", lambda h: h.users.repeat),
    ("focus", 1, "chance a session is about a favourite category", lambda h: h.users.focus),
    ("log_novelty", 1, "log appetite for newly launched SKUs", lambda h: np.log(h.users.novelty)),
    ("price_center", 1, "preferred latent price (same scale as the SKUs' latent price)", lambda h: h.users.price_center),
    ("price_width", 1, "tolerance around the preferred price", lambda h: h.users.price_width),
    ("weekday", 7, "activity multiplier per weekday, Monday first (mean 1)", lambda h: h.users.weekday),
    ("hour", 3, "usual hour of day as sin, cos, and its spread / 24",
     lambda h: np.column_stack([np.sin(h.users.hour_mean * np.pi / 12), np.cos(h.users.hour_mean * np.pi / 12),
                                h.users.hour_sd / 24])),
    ("fav_category_centroid", N_FAV_CATEGORIES * 16, "name centroids of the 3 favourite categories",
     lambda h: h.cat.cat_centroid[h.users.fav_cats].reshape(len(h.users), -1)),
    ("fav_sku_name", N_FAV_SKUS * 16, "continuous name vectors of the 4 favourite SKUs",
     lambda h: h.cat.sku_name[h.users.fav_skus].reshape(len(h.users), -1)),
    ("fav_sku_price", N_FAV_SKUS, "latent prices of the 4 favourite SKUs",
     lambda h: h.cat.sku_price_latent[h.users.fav_skus]),
]


def oracle_matrix(h: Hidden) -> np.ndarray:
    cols = [np.asarray(fn(h), dtype=np.float64).reshape(len(h.users), width) for _, width, _, fn in BLOCKS]
    return np.concatenate(cols, axis=1) if cols else np.zeros((len(h.users), 0))


def readme() -> str:
    lines = [
        "# Oracle: the true hidden state of each relevant client",
        "",
        "`client_ids.npy` (int64) and `embeddings.npy` (float16) form an entry (rows in the hash order",
        "every `ubp` entry uses). Each row is the user's hidden state at the end of the input window",
        "(the train-target start), as drawn by `ubp synth`. Columns:",
        "",
        "| columns | name | meaning |",
        "|---|---|---|",
    ]
    start = 0
    for name, width, doc, _ in BLOCKS:
        span = f"{start}" if width == 1 else f"{start}–{start + width - 1}"
        lines.append(f"| {span} | {name} | {doc} |")
        start += width
    return "\n".join(lines) + "\n"


def write_oracle(out: Path, client_ids: np.ndarray, h: Hidden) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_entry(out, client_ids, oracle_matrix(h))
    (out / "README.md").write_text(readme())
