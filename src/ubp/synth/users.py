"""Users' hidden traits: what they like, how often they come, how they shop. One row per user."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ubp.synth.catalogue import Catalogue
from ubp.synth.params import N_DAYS, N_TOPICS, WorldParams
from ubp.synth.sampling import draw_rows

N_FAV_CATEGORIES = 3
N_FAV_SKUS = 4


@dataclass(frozen=True)
class Users:
    """Traits of a block of users (all arrays share the first axis)."""

    index: np.ndarray  # global user index (the id is derived from it)
    engaged: np.ndarray  # bool: from the engaged population (most relevant clients)
    join_day: np.ndarray  # first day of activity (negative: joined before the log starts)
    rate: np.ndarray  # sessions per active day (before weekday habits)
    session_len: np.ndarray  # mean events per session
    p_quit: np.ndarray  # daily chance an active user goes quiet
    p_return: np.ndarray  # daily chance a quiet user comes back
    taste0: np.ndarray  # (n, T) topic taste at day 0
    taste1: np.ndarray  # (n, T) the taste it drifts toward
    drift: np.ndarray  # how far along taste0 -> taste1 the user is at the last day
    fav_cats: np.ndarray  # (n, 3) favourite categories (sessions focus on them)
    fav_skus: np.ndarray  # (n, 4) favourite SKUs, bought again and again (consumables)
    focus: np.ndarray  # chance a session is about a favourite category
    price_center: np.ndarray  # preferred latent price
    price_width: np.ndarray  # tolerance around it
    p_search: np.ndarray  # share of session events that are searches
    p_add: np.ndarray  # share of session events that are cart additions
    p_buy: np.ndarray  # chance a cart addition is bought
    p_remove: np.ndarray  # chance an addition that is not bought is removed
    repeat: np.ndarray  # chance a cart addition is a favourite SKU
    novelty: np.ndarray  # appetite for newly launched SKUs (scales their launch boost)
    weekday: np.ndarray  # (n, 7) activity multiplier per weekday (mean 1)
    hour_mean: np.ndarray  # usual hour of day
    hour_sd: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows: np.ndarray) -> "Users":
        return Users(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @staticmethod
    def concat(parts: list["Users"]) -> "Users":
        return Users(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Users)})

    def taste_at(self, rows: np.ndarray, day: np.ndarray) -> np.ndarray:
        """(len(rows), T) topic taste on `day`: a slow linear drift from taste0 to taste1."""
        w = (self.drift[rows] * np.clip(day, 0, N_DAYS) / N_DAYS)[:, None]
        return (1.0 - w) * self.taste0[rows] + w * self.taste1[rows]


def _dirichlet(rng: np.random.Generator, alpha: float, shape: tuple[int, int]) -> np.ndarray:
    g = rng.gamma(alpha, 1.0, shape)
    return g / np.maximum(g.sum(axis=1, keepdims=True), 1e-300)


def _beta_mix(rng: np.random.Generator, n: int, low_share: float, low: tuple, high: tuple) -> np.ndarray:
    """A two-population beta: a share of users who almost never do the thing, the rest spread out."""
    return np.where(rng.random(n) < low_share, rng.beta(*low, n), rng.beta(*high, n))


def draw_users(index: np.ndarray, params: WorldParams, cat: Catalogue, rng: np.random.Generator) -> Users:
    n = len(index)
    engaged = rng.random(n) < params.engaged_share
    existing = rng.random(n) < np.where(engaged, 0.75, 0.5)
    join_day = np.where(existing, -rng.integers(1, 400, n), rng.integers(0, N_DAYS, n))
    rate = np.where(engaged, rng.lognormal(np.log(0.12), 0.9, n), rng.lognormal(np.log(0.002), 0.8, n))
    lost = rng.random(n) < 0.25

    taste0 = _dirichlet(rng, 0.3, (n, N_TOPICS))
    taste1 = 0.5 * taste0 + 0.5 * _dirichlet(rng, 0.3, (n, N_TOPICS))
    fav_topics = draw_rows(np.repeat(taste0, N_FAV_CATEGORIES, axis=0), rng.random(n * N_FAV_CATEGORIES))
    fav_cats = cat.cats_by_topic.sample(fav_topics, rng.random(len(fav_topics)))
    fav_cats2 = np.repeat(fav_cats.reshape(n, N_FAV_CATEGORIES), 2, axis=1)[:, :N_FAV_SKUS].ravel()
    fav_skus = cat.old_by_category.sample(fav_cats2, rng.random(len(fav_cats2)))
    fallback = cat.old_by_topic.sample(cat.cat_topic[fav_cats2], rng.random(len(fav_cats2)))
    fav_skus = np.where(fav_skus >= 0, fav_skus, fallback)

    hour_peak = draw_rows(np.tile([0.5, 0.3, 0.2], (n, 1)), rng.random(n))
    return Users(
        index=index,
        engaged=engaged,
        join_day=join_day,
        rate=rate,
        session_len=np.where(engaged, 2.0, 1.0) + rng.lognormal(np.log(np.where(engaged, 5.0, 1.5)), 0.5, n),
        p_quit=np.minimum(0.5, rng.lognormal(np.log(1 / 45), 0.8, n)),
        p_return=np.where(lost, 0.001, np.minimum(0.5, rng.lognormal(np.log(1 / 20), 0.8, n))),
        taste0=taste0,
        taste1=taste1,
        drift=rng.uniform(0.0, 1.0, n),
        fav_cats=fav_cats.reshape(n, N_FAV_CATEGORIES),
        fav_skus=fav_skus.reshape(n, N_FAV_SKUS),
        focus=rng.beta(3.0, 2.0, n),
        price_center=0.7 * taste0 @ cat.topic_price + rng.normal(0.0, 0.5, n),
        price_width=rng.lognormal(np.log(0.7), 0.3, n),
        p_search=rng.beta(2.0, 30.0, n),
        # light engaged users come to buy: their share of cart additions is higher
        p_add=rng.beta(2.0, 40.0, n) * np.where(engaged, np.clip((rate / 0.12) ** -0.8, 0.15, 6.0), 1.0),
        p_buy=_beta_mix(rng, n, 0.2, (0.3, 12.0), (2.2, 4.0)),
        p_remove=rng.beta(2.2, 3.0, n),
        repeat=rng.beta(1.2, 3.0, n),
        novelty=rng.lognormal(0.0, 0.8, n),
        weekday=7.0 * _dirichlet(rng, 4.0, (n, 7)),
        hour_mean=np.array([20.0, 13.0, 9.0])[hour_peak] + rng.normal(0.0, 1.5, n),
        hour_sd=rng.uniform(1.5, 4.0, n),
    )
