"""Sessions of ordered events for a block of users: visits, searches, cart additions, removals, buys."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubp.synth.catalogue import CATEGORY_PAGE_URLS, SKU_PAGE_URLS, Catalogue
from ubp.synth.params import N_DAYS
from ubp.synth.sampling import draw_rows, quantize
from ubp.synth.users import N_FAV_CATEGORIES, N_FAV_SKUS, Users

DAY = 86_400
N_CANDIDATES = 8  # SKUs a user weighs before putting one in the cart
NEW_ARRIVALS_SHARE = 0.2  # chance (× the user's novelty appetite) an addition is chosen among new arrivals
MAX_SESSION_EVENTS = 200
SKU_PAGE_SHARE, CATEGORY_PAGE_SHARE = 0.55, 0.20  # of page visits; the rest are generic pages
GENERIC_URLS = 2
FOLLOW_UP_DAYS = 3.0  # mean delay of a complement follow-up session after a purchase
MAX_FOLLOW_UP_ROUNDS = 8  # follow-ups of follow-ups, at most this deep


@dataclass(frozen=True)
class Events:
    """Events of one type: chunk-local user row, seconds since day 0, and the value (SKU / URL / query)."""

    user: np.ndarray
    t: np.ndarray
    value: np.ndarray  # sku index, url index, or (n, 16) uint8 query

    def keep(self, mask: np.ndarray) -> "Events":
        return Events(self.user[mask], self.t[mask], self.value[mask])

    def join(self, other: "Events") -> "Events":
        return Events(*(np.concatenate([a, b]) for a, b in ((self.user, other.user), (self.t, other.t),
                                                             (self.value, other.value))))


@dataclass(frozen=True)
class Sessions:
    user: np.ndarray
    day: np.ndarray
    start: np.ndarray  # seconds since day 0
    category: np.ndarray  # what the session is about


def draw_sessions(users: Users, counts: np.ndarray, cat: Catalogue, rng: np.random.Generator) -> Sessions:
    """One row per session: when it starts and which category it is about."""
    rows, days = np.nonzero(counts)
    reps = counts[rows, days]
    user, day = np.repeat(rows, reps), np.repeat(days, reps)
    hour = np.mod(rng.normal(users.hour_mean[user], users.hour_sd[user]), 24.0)
    start = day * DAY + (hour * 3600).astype(np.int64)

    on_favourite = rng.random(len(user)) < users.focus[user]
    fav = users.fav_cats[user, rng.integers(0, N_FAV_CATEGORIES, len(user))]
    topic = draw_rows(users.taste_at(user, day), rng.random(len(user)))
    explore = cat.cats_by_topic.sample(topic, rng.random(len(user)))
    return Sessions(user, day, start, np.where(on_favourite, fav, explore))


def _candidate_weights(users: Users, user: np.ndarray, day: np.ndarray, cand: np.ndarray, cat: Catalogue) -> np.ndarray:
    """Price fit × launch factor per candidate (0 for unlaunched SKUs and for missing candidates, -1)."""
    sku = np.maximum(cand, 0)
    gap = (cat.sku_price_latent[sku] - users.price_center[user, None]) / users.price_width[user, None]
    launch = cat.launch_factor(sku, day[:, None], users.novelty[user, None])
    return np.exp(-0.5 * gap**2) * launch * (cand >= 0)


def _pick_cart_skus(users: Users, s: Sessions, sess: np.ndarray, cat: Catalogue, rng: np.random.Generator):
    """A SKU per cart addition: a favourite (re-buy) or the best of K candidates by taste × price × novelty.

    Candidates come from the session's category, or, for users drawn to novelty, from the SKUs
    launched during the log in the session's topic (new arrivals are a small, fast-selling set).
    """
    n = len(sess)
    user, day = s.user[sess], s.day[sess]
    favourite = users.fav_skus[user, rng.integers(0, N_FAV_SKUS, n)]
    groups = np.repeat(s.category[sess], N_CANDIDATES)
    regular = cat.by_category.sample(groups, rng.random(len(groups))).reshape(n, N_CANDIDATES)
    fresh = cat.new_by_topic.sample(cat.cat_topic[groups], rng.random(len(groups))).reshape(n, N_CANDIDATES)
    w_regular, w_fresh = (_candidate_weights(users, user, day, c, cat) for c in (regular, fresh))
    browse_new = rng.random(n) < NEW_ARRIVALS_SHARE * users.novelty[user]
    use_fresh = (browse_new & (w_fresh.max(axis=1) > 0))[:, None]
    cand, weight = np.where(use_fresh, fresh, regular), np.where(use_fresh, w_fresh, w_regular)
    best = np.argmax(np.log(weight + 1e-300) + rng.gumbel(size=weight.shape), axis=1)
    chosen = cand[np.arange(n), best]
    is_repeat = (rng.random(n) < users.repeat[user]) | (weight.max(axis=1) <= 0)
    return np.where(is_repeat, favourite, chosen), is_repeat


def _page_urls(s: Sessions, sess: np.ndarray, cat: Catalogue, rng: np.random.Generator) -> np.ndarray:
    """URL index per page visit: a launched SKU's page in the session's category, the category page, or generic."""
    n = len(sess)
    kind = np.minimum(np.searchsorted([SKU_PAGE_SHARE, SKU_PAGE_SHARE + CATEGORY_PAGE_SHARE], rng.random(n), "right"), 2)
    sku = cat.by_category.sample(s.category[sess], rng.random(n))
    kind = np.where((kind == SKU_PAGE_URLS) & (cat.sku_launch[sku] > s.day[sess]), CATEGORY_PAGE_URLS, kind)
    generic = cat.generic_urls.sample(np.zeros(n, dtype=np.int64), rng.random(n))
    return np.select(
        [kind == SKU_PAGE_URLS, kind == CATEGORY_PAGE_URLS],
        [cat.url_index(SKU_PAGE_URLS, sku), cat.url_index(CATEGORY_PAGE_URLS, s.category[sess])],
        cat.url_index(GENERIC_URLS, generic),
    )


def simulate_events(
    users: Users, counts: np.ndarray, cat: Catalogue, rng: np.random.Generator,
    complements: float = 0.0, complement_of: np.ndarray | None = None,
) -> dict[str, Events]:
    """All events of a block of users, by type; events past the last day are dropped.

    With `complements` > 0 each purchase brings its buyer back, with that chance, for a follow-up
    session about the complement of the bought SKU's category (`complement_of`), a few days later;
    that session's purchases may do the same. Sessions then depend on earlier purchases, not only
    on the user's traits, activity and drifting taste; with 0 no random number is drawn for it, so
    the world is the same as one generated without the option.
    """
    events = _session_events(users, draw_sessions(users, counts, cat, rng), cat, rng)
    if complements <= 0:
        return events
    assert complement_of is not None
    bought = events["product_buy"]
    for _ in range(MAX_FOLLOW_UP_ROUNDS):
        back = bought.keep(rng.random(len(bought.user)) < complements)
        if not len(back.user):
            break
        start = back.t + np.ceil(rng.exponential(FOLLOW_UP_DAYS * DAY, len(back.user))).astype(np.int64)
        s = Sessions(back.user, start // DAY, start, complement_of[cat.sku_cat[back.value]])
        more = _session_events(users, s, cat, rng)
        events = {name: e.join(more[name]) for name, e in events.items()}
        bought = more["product_buy"]
    return events


def _session_events(users: Users, s: Sessions, cat: Catalogue, rng: np.random.Generator) -> dict[str, Events]:
    """The events of sessions `s`, by type; events past the last day are dropped."""
    length = np.minimum(rng.geometric(1.0 / users.session_len[s.user]), MAX_SESSION_EVENTS)
    sess = np.repeat(np.arange(len(s.user)), length)
    gaps = np.ceil(rng.exponential(45.0, len(sess))).astype(np.int64)
    cum = np.cumsum(gaps)
    first = np.cumsum(length) - length
    t = s.start[sess] + cum - (cum[first] - gaps[first])[sess]
    user = s.user[sess]

    r = rng.random(len(sess))
    search = r < users.p_search[user]
    add = ~search & (r < users.p_search[user] + users.p_add[user])
    visit = ~search & ~add

    a_sess = sess[add]
    sku, is_repeat = _pick_cart_skus(users, s, a_sess, cat, rng)
    a_user, a_t = user[add], t[add]
    p_buy = np.where(is_repeat, np.minimum(0.95, 1.5 * users.p_buy[a_user]), users.p_buy[a_user])
    o = rng.random(len(a_sess))
    bought = o < p_buy
    removed = ~bought & (rng.random(len(a_sess)) < users.p_remove[a_user])
    buy_t = a_t + 30 + np.ceil(rng.exponential(240.0, len(a_sess))).astype(np.int64)
    remove_t = a_t + 10 + np.ceil(rng.exponential(150.0, len(a_sess))).astype(np.int64)

    q_sess = sess[search]
    sought = cat.by_category.sample(s.category[q_sess], rng.random(len(q_sess)))
    query = quantize(cat.sku_name[sought] + rng.normal(0.0, 0.35, cat.sku_name[sought].shape))

    events = {
        "product_buy": Events(a_user[bought], buy_t[bought], sku[bought]),
        "add_to_cart": Events(a_user, a_t, sku),
        "remove_from_cart": Events(a_user[removed], remove_t[removed], sku[removed]),
        "page_visit": Events(user[visit], t[visit], _page_urls(s, sess[visit], cat, rng)),
        "search_query": Events(user[search], t[search], query),
    }
    return {name: e.keep(e.t < N_DAYS * DAY) for name, e in events.items()}
