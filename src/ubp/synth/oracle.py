"""The oracle: each relevant user's true hidden state at the end of the input window, as an entry.

Scoring it shows how much of the six tasks a perfect profile could explain; every column is
documented in DIR/oracle/README.md, generated from `BLOCKS` so code and doc never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ubp.chunks import column_sum

from ubp.entry import write_entry
from ubp.synth.catalogue import LAUNCH_BOOST, LAUNCH_FADE_DAYS, Catalogue
from ubp.synth.params import N_TOPICS
from ubp.synth.sessions import NEW_ARRIVALS_SHARE
from ubp.synth.users import N_FAV_CATEGORIES, N_FAV_SKUS, Users

HORIZON = 14  # days ahead for the expected-buys columns (one target window)
TOP_CATEGORIES = 112  # the most demanded categories get an intent column each (every world has ≥ 120)
TOP_SKUS = 224  # the most demanded SKUs get an intent column each
PRICE_BUCKETS = 100
BLOCK_ROWS = 16_384  # users per block of the oracle matrix (a multiple of the BLAS kernels' row tiles)


@dataclass(frozen=True)
class Hidden:
    """What the oracle reads: traits, the active/dormant chain on the last input day, the catalogue."""

    users: Users
    active_last: np.ndarray  # bool: active on the day before the cutoff
    cutoff: int  # first day of the train-target window
    cat: Catalogue

    def block(self, rows: slice, shared: dict[str, object]) -> "Hidden":
        """The state of a block of these users, with the rankings of all users (`shared`, see `_SHARED`)."""
        part = Hidden(self.users.take(rows), self.active_last[rows], self.cutoff, self.cat)
        part.__dict__.update(shared)  # fills the cached properties, as cached_property itself does
        return part

    @cached_property
    def taste(self) -> np.ndarray:
        """(n, T) topic taste on the last input day."""
        return self.users.taste_at(np.arange(len(self.users)), np.full(len(self.users), self.cutoff - 1))

    @cached_property
    def cat_given_topic(self) -> np.ndarray:
        """(T, C) chance an exploring session of a topic is about each category."""
        c = self.cat
        out = np.zeros((N_TOPICS, len(c.cat_id)))
        out[c.cat_topic, np.arange(len(c.cat_id))] = c.cats_by_topic.item_probability(len(c.cat_id))
        return out

    @cached_property
    def adds(self) -> np.ndarray:
        """Expected cart additions over the next HORIZON days: chain occupancy × sessions × events × add rate."""
        u = self.users
        pi = u.p_return / (u.p_return + u.p_quit)
        decay = 1.0 - u.p_quit - u.p_return
        k = np.arange(1, HORIZON + 1)[None, :]
        occupancy = (pi[:, None] + (self.active_last - pi)[:, None] * decay[:, None] ** k).sum(axis=1)
        return occupancy * u.rate * u.session_len * u.p_add

    @cached_property
    def fresh(self) -> np.ndarray:
        """Chance a non-favourite addition is picked among new arrivals."""
        return np.minimum(1.0, NEW_ARRIVALS_SHARE * self.users.novelty)

    @cached_property
    def repeat_buys(self) -> np.ndarray:
        """Expected buys of favourite SKUs over the horizon."""
        u = self.users
        return self.adds * u.repeat * np.minimum(0.95, 1.5 * u.p_buy)

    @cached_property
    def chosen_buys(self) -> np.ndarray:
        """Expected buys over the horizon of SKUs that are not favourites."""
        return self.adds * (1.0 - self.users.repeat) * self.users.p_buy

    @cached_property
    def browse_buys(self) -> np.ndarray:
        """Expected buys over the horizon of SKUs chosen in the session's category."""
        return self.chosen_buys * (1.0 - self.fresh)

    def session_mix(self, categories: np.ndarray) -> np.ndarray:
        """(n, len(categories)) chance a session is about each category: favourites or taste."""
        u = self.users
        fav = (u.fav_cats[:, :, None] == categories[None, None, :]).mean(axis=1)
        return u.focus[:, None] * fav + (1.0 - u.focus[:, None]) * (self.taste @ self.cat_given_topic[:, categories])

    def favourite_share(self, skus: np.ndarray) -> np.ndarray:
        """(n, len(skus)) share of the user's favourite slots held by each SKU."""
        return (self.users.fav_skus[:, :, None] == skus[None, None, :]).mean(axis=1)

    @cached_property
    def launch(self) -> np.ndarray:
        """(S,) launch factor of every SKU at the cutoff for an average novelty appetite (0 if unlaunched)."""
        c = self.cat
        return c.launch_factor(np.arange(c.n_skus), np.full(c.n_skus, self.cutoff), np.ones(c.n_skus))

    @cached_property
    def past_launch(self) -> np.ndarray:
        """(S,) launch factor of every SKU averaged over the input window (geometric sum of the fading boost)."""
        c = self.cat
        days = np.clip(self.cutoff - np.maximum(c.sku_launch, 0), 0, self.cutoff)  # days on sale before the cutoff
        r = np.exp(-1.0 / LAUNCH_FADE_DAYS)
        boosted = np.where(c.sku_launch >= 0, LAUNCH_BOOST * (1.0 - r**days) / (1.0 - r), 0.0)
        return (days + boosted) / self.cutoff

    def pick_chances(self, launch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S,) chances that browsing a SKU's category, or new arrivals of its topic, picks it,
        for given launch factors: popularity × launch factor, within the category / topic."""
        c = self.cat
        in_category = _within(c.by_category.item_probability(c.n_skus) * launch, c.sku_cat, len(c.cat_id))
        in_topic = _within(c.new_by_topic.item_probability(c.n_skus) * launch, c.cat_topic[c.sku_cat], N_TOPICS)
        return in_category, in_topic

    @cached_property
    def sku_chances(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pick_chances(self.launch)

    @cached_property
    def topic_mix(self) -> np.ndarray:
        """(n, T) chance a session is about each topic: favourite categories' topics or taste."""
        u = self.users
        fav_topics = np.eye(N_TOPICS)[self.cat.cat_topic[u.fav_cats]].mean(axis=1)
        return u.focus[:, None] * fav_topics + (1.0 - u.focus[:, None]) * self.taste

    @cached_property
    def fresh_buys(self) -> np.ndarray:
        """Expected buys of new arrivals over the horizon."""
        return self.chosen_buys * self.fresh

    def category_demand(self, weight: np.ndarray) -> np.ndarray:
        """(C,) Σ over users of weight × session mix, without an (n, C) matrix."""
        u, n_cat = self.users, len(self.cat.cat_id)
        explore = ((weight * (1.0 - u.focus))[:, None] * self.taste).sum(axis=0) @ self.cat_given_topic
        focus = np.repeat(weight * u.focus / N_FAV_CATEGORIES, N_FAV_CATEGORIES)
        return explore + np.bincount(u.fav_cats.ravel(), focus, minlength=n_cat)

    def favourite_demand(self, n: int, key: np.ndarray) -> np.ndarray:
        """(n,) Σ over users of re-buys of the favourite SKUs, keyed by `key` (SKU or its category)."""
        return np.bincount(key.ravel(), np.repeat(self.repeat_buys / N_FAV_SKUS, N_FAV_SKUS), minlength=n)

    @cached_property
    def top_categories(self) -> np.ndarray:
        """Categories by expected buys summed over the relevant users (state only, no draw)."""
        c = self.cat
        demand = self.category_demand(self.browse_buys)
        demand += self.favourite_demand(len(c.cat_id), c.sku_cat[self.users.fav_skus])
        return np.argsort(-demand, kind="stable")[:TOP_CATEGORIES]

    @cached_property
    def top_skus(self) -> np.ndarray:
        """SKUs by expected buys summed over the relevant users (state only, no draw)."""
        c = self.cat
        per_cat = self.category_demand(self.browse_buys)
        per_topic = (self.fresh_buys[:, None] * self.topic_mix).sum(axis=0)[c.cat_topic[c.sku_cat]]
        demand = 2.0 * self.favourite_demand(c.n_skus, self.users.fav_skus)
        for in_category, in_topic in (self.sku_chances, self.pick_chances(self.past_launch)):
            demand += per_cat[c.sku_cat] * in_category + per_topic * in_topic  # selling now; sold most so far
        return np.argsort(-demand, kind="stable")[:TOP_SKUS]


def _within(weight: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Weights divided by their group's total (0 in a weightless group)."""
    total = np.bincount(group, weight, n_groups)[group]
    return weight / np.where(total > 0, total, 1.0)


def _buy_chance(expected: np.ndarray) -> np.ndarray:
    """Chance of at least one buy when buys arrive at the expected rate."""
    return 1.0 - np.exp(-expected)


def _category_intent(h: Hidden) -> np.ndarray:
    cats = h.top_categories
    fav = (h.cat.sku_cat[h.users.fav_skus][:, :, None] == cats[None, None, :]).mean(axis=1)
    return _buy_chance(h.browse_buys[:, None] * h.session_mix(cats) + h.repeat_buys[:, None] * fav)


def _price_fit(h: Hidden, latent: np.ndarray) -> np.ndarray:
    u = h.users
    return np.exp(-0.5 * ((latent[None, :] - u.price_center[:, None]) / u.price_width[:, None]) ** 2)


def _sku_intent(h: Hidden) -> np.ndarray:
    skus = h.top_skus
    c = h.cat
    fit = _price_fit(h, c.sku_price_latent[skus])
    in_category, in_topic = h.sku_chances
    browse = h.session_mix(c.sku_cat[skus]) * in_category[skus] * fit
    fresh = h.topic_mix[:, c.cat_topic[c.sku_cat[skus]]] * in_topic[skus] * fit
    return _buy_chance(h.browse_buys[:, None] * browse + h.fresh_buys[:, None] * fresh
                       + h.repeat_buys[:, None] * h.favourite_share(skus))


def _price_intent(h: Hidden) -> np.ndarray:
    """Expected buys per price bucket: the sessions' price mix × the user's price fit, plus favourites."""
    c = h.cat
    n_cat = len(c.cat_id)
    bucket_mix = np.zeros((n_cat, PRICE_BUCKETS))  # (C, B) price mix of a category's browsed SKUs
    np.add.at(bucket_mix, (c.sku_cat, c.sku_price), h.sku_chances[0])
    mid = np.bincount(c.sku_price, c.sku_price_latent, PRICE_BUCKETS) / np.maximum(np.bincount(c.sku_price, minlength=PRICE_BUCKETS), 1)
    u = h.users
    mix = u.focus[:, None] * bucket_mix[u.fav_cats].mean(axis=1)
    mix += (1.0 - u.focus[:, None]) * (h.taste @ (h.cat_given_topic @ bucket_mix))
    browse = mix * _price_fit(h, mid)
    browse /= np.maximum(browse.sum(axis=1, keepdims=True), 1e-12)
    fav = np.zeros((len(u), PRICE_BUCKETS))
    np.add.at(fav, (np.repeat(np.arange(len(u)), N_FAV_SKUS), c.sku_price[u.fav_skus].ravel()), 1.0 / N_FAV_SKUS)
    return _buy_chance(h.browse_buys[:, None] * browse + h.repeat_buys[:, None] * fav)


def _new_arrival_intent(h: Hidden) -> np.ndarray:
    """Expected buys of new arrivals per topic: the fresh share of additions × the sessions' topic mix."""
    return _buy_chance(h.fresh_buys[:, None] * h.topic_mix)


Block = tuple[str, int, str, Callable[[Hidden], np.ndarray]]
BLOCKS: list[Block] = [
    ("taste_topic", N_TOPICS, "topic taste on the last input day (sums to 1 over the topics)", lambda h: h.taste),
    ("expected_buys_14d", 1, "expected number of buys in the next 14 days given the state",
     lambda h: h.repeat_buys + h.chosen_buys),
    ("buy_chance_14d", 1, "chance of at least one buy in the next 14 days (Poisson approximation)",
     lambda h: _buy_chance(h.repeat_buys + h.chosen_buys)),
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
    ("new_arrivals_topic", N_TOPICS, "chance of buying a new arrival of each topic in the next 14 days",
     _new_arrival_intent),
    ("price_bucket_intent", PRICE_BUCKETS, "chance of buying in each price bucket 0..99 in the next 14 days",
     _price_intent),
    ("category_intent", TOP_CATEGORIES, f"chance of buying in each of the {TOP_CATEGORIES} categories with the most "
     "expected buys over all relevant clients (in that order) in the next 14 days", _category_intent),
    ("sku_intent", TOP_SKUS, f"chance of buying each of the {TOP_SKUS} SKUs with the most expected buys over all "
     "relevant clients (in that order, favourites re-bought included) in the next 14 days", _sku_intent),
]
WIDTH = sum(width for _, width, _, _ in BLOCKS)
_SHARED = ("cat_given_topic", "sku_chances", "top_categories", "top_skus")  # sums over all users or SKUs


def _raw_rows(h: Hidden) -> np.ndarray:
    """(n, WIDTH) float64: every block for the users of `h`, before standardising."""
    cols = [np.asarray(fn(h), dtype=np.float64).reshape(len(h.users), width) for _, width, _, fn in BLOCKS]
    return np.concatenate(cols, axis=1)


def _raw_blocks(h: Hidden, spans: list[slice], shared: dict[str, object]) -> Iterator[np.ndarray]:
    """The raw rows block after block; each pass recomputes them, so no block outlives its use."""
    for rows in spans:
        yield _raw_rows(h.block(rows, shared))


def oracle_matrix(h: Hidden) -> np.ndarray:
    """Every block, each column standardised over the relevant clients (mean 0, sd 1; constant → 0), as float16.

    Memory: the float64 matrix of a million relevant clients is 4 GB and its blocks' temporaries several
    times that (the cause of a 17 GiB peak at the full scale). So the rows are computed BLOCK_ROWS users at
    a time, three times (column sums, squared deviations, standardised rows): only the float16 result is
    whole. Per-user columns depend on the user's own row only; the rankings that sum over all users are
    computed once. Mean and sd follow numpy's `std`/`mean` step by step, so the output is bit-identical
    to standardising the whole float64 matrix.
    """
    n = len(h.users)
    whole = replace(h)  # a fresh object: the per-user caches filled by the rankings die with it
    shared = {name: getattr(whole, name) for name in _SHARED}
    del whole
    # The last block takes the remainder: never a small block, as products of a few rows take other
    # BLAS paths whose last bits differ (measured: blocks of 1 or 7 rows differ, of ≥ 1000 rows do not).
    starts = range(0, max(n - BLOCK_ROWS, 0) + 1, BLOCK_ROWS)
    spans = [slice(a, b) for a, b in zip(starts, [*starts[1:], n])]
    mean = np.true_divide(column_sum(_raw_blocks(h, spans, shared), WIDTH), np.intp(n))
    deviations = (np.square(x - mean, out=x) for x in _raw_blocks(h, spans, shared))
    sd = np.sqrt(np.true_divide(column_sum(deviations, WIDTH), np.intp(n)))
    scale = np.where(sd > 0, sd, 1.0)
    out = np.empty((n, WIDTH), dtype=np.float16)
    for rows, x in zip(spans, _raw_blocks(h, spans, shared)):
        out[rows] = (x - mean) / scale
    return out


def readme() -> str:
    lines = [
        "# Oracle: the true hidden state of each relevant client",
        "",
        "`client_ids.npy` (int64) and `embeddings.npy` (float16) form an entry (rows in the hash order",
        "every `ubp` entry uses). Each row is the user's hidden state at the end of the input window",
        "(the train-target start), as drawn by `ubp synth`; each column is standardised over the relevant",
        "clients (mean 0, sd 1). Columns:",
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
