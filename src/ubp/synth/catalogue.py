"""The catalogue: latent topics, categories, SKUs (popularity, price, name, launch day) and URLs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubp.layout import VECTOR_LEN
from ubp.synth.ids import scatter_ids
from ubp.synth.params import INPUT_DAYS, N_DAYS, N_TOPICS, WorldParams
from ubp.synth.sampling import GroupedSampler, quantize

NOT_LAUNCHED_LATE = -10_000  # launch day of SKUs that exist before the first day
LATE_LAUNCH_SHARE = 0.002  # SKUs launched at a steady trickle during the whole log
# The season's collection: a wave of launches around the end of the input window, so that new
# SKUs first bought in the train-target window keep selling in the validation window.
WAVE_SHARE = 0.004
WAVE_DAYS = (INPUT_DAYS - 2, INPUT_DAYS + 7)
LAUNCH_CATEGORY_POWER = 2.0  # launches favour popular categories: weight ~ category weight^power
LAUNCH_BOOST = 40.0  # extra popularity of a brand-new SKU, fading with LAUNCH_FADE_DAYS
LAUNCH_FADE_DAYS = 30.0
ZIPF_EXPONENT = 1.0  # SKU popularity ~ 1 / rank^a
SKU_PAGE_URLS, CATEGORY_PAGE_URLS = 0, 1  # url index = offset by kind, see `Catalogue.url_index`


@dataclass(frozen=True)
class Catalogue:
    """Everything about items; arrays are indexed by dense internal indices, ids are only for output."""

    topic_price: np.ndarray  # (T,) latent price level of each topic
    cat_topic: np.ndarray  # (C,)
    cat_centroid: np.ndarray  # (C, 16) continuous name centroid
    cat_id: np.ndarray  # (C,) int64 ids
    sku_cat: np.ndarray  # (S,)
    sku_price_latent: np.ndarray  # (S,) continuous price; the bucket is its quantile
    sku_price: np.ndarray  # (S,) bucket 0..99
    sku_name: np.ndarray  # (S, 16) continuous name vector
    sku_name_bytes: np.ndarray  # (S, 16) uint8
    sku_launch: np.ndarray  # (S,) launch day (NOT_LAUNCHED_LATE for the old catalogue)
    sku_id: np.ndarray  # (S,) int64
    url_id: np.ndarray  # (S + C + G,) int64: SKU pages, then category pages, then generic pages
    by_category: GroupedSampler  # SKUs within a category, by static popularity
    by_topic: GroupedSampler  # SKUs within a topic, by static popularity
    new_by_topic: GroupedSampler  # the season's wave of launches, within a topic ("new arrivals")
    old_by_category: GroupedSampler  # pre-existing SKUs within a category (users' lasting favourites)
    old_by_topic: GroupedSampler  # pre-existing SKUs within a topic (fallback for the above)
    cats_by_topic: GroupedSampler  # categories within a topic, by category weight
    generic_urls: GroupedSampler  # generic pages (one group), Zipf popularity

    @property
    def n_skus(self) -> int:
        return len(self.sku_id)

    def url_index(self, kind: int, index: np.ndarray) -> np.ndarray:
        """Position in `url_id` of the page of a SKU (kind 0), a category (kind 1) or a generic page (2)."""
        offsets = (0, self.n_skus, self.n_skus + len(self.cat_id))
        return offsets[kind] + index

    def launch_factor(self, sku: np.ndarray, day: np.ndarray, novelty: np.ndarray) -> np.ndarray:
        """0 before launch; 1 + a fading boost (scaled by the user's taste for novelty) after it."""
        age = day - self.sku_launch[sku]
        boost = LAUNCH_BOOST * novelty * np.exp(-np.maximum(age, 0) / LAUNCH_FADE_DAYS)
        return np.where(age >= 0, 1.0 + boost, 0.0)


def _zipf(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Zipf-like weights 1/rank^a in a random order."""
    return rng.permutation((np.arange(1, n + 1, dtype=np.float64)) ** -exponent)


def _launch_days(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Launch day per SKU (the steady trickle, the season's wave, or NOT_LAUNCHED_LATE) and the wave's mask."""
    u = rng.random(n)
    trickle = rng.integers(0, N_DAYS, n)
    wave = rng.integers(*WAVE_DAYS, n)
    in_wave = (u >= LATE_LAUNCH_SHARE) & (u < LATE_LAUNCH_SHARE + WAVE_SHARE)
    return np.select([u < LATE_LAUNCH_SHARE, in_wave], [trickle, wave], NOT_LAUNCHED_LATE), in_wave


def build_catalogue(params: WorldParams) -> Catalogue:
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 0]))
    n_cat, n_sku, n_gen = params.n_categories, params.n_skus, params.n_generic_urls

    topic_centroid = rng.normal(0.0, 1.0, (N_TOPICS, VECTOR_LEN))
    topic_price = rng.normal(0.0, 1.0, N_TOPICS)
    cat_topic = rng.integers(0, N_TOPICS, n_cat)
    cat_topic[:N_TOPICS] = np.arange(N_TOPICS)  # every topic has a category
    cat_centroid = 0.8 * topic_centroid[cat_topic] + rng.normal(0.0, 0.6, (n_cat, VECTOR_LEN))
    cat_price = 0.7 * topic_price[cat_topic] + rng.normal(0.0, 0.7, n_cat)
    cat_weight = rng.lognormal(0.0, 1.0, n_cat)

    sku_cat = rng.choice(n_cat, n_sku, p=cat_weight / cat_weight.sum())
    sku_cat[:n_cat] = rng.permutation(n_cat)[: min(n_cat, n_sku)]  # every category has a SKU
    launch, in_wave = _launch_days(rng, n_sku)
    late = launch != NOT_LAUNCHED_LATE
    late[:n_cat] = in_wave[:n_cat] = False  # the SKU that gives each category its existence is never a launch
    launch = np.where(late, launch, NOT_LAUNCHED_LATE)
    launch_weight = cat_weight**LAUNCH_CATEGORY_POWER
    sku_cat = np.where(late, rng.choice(n_cat, n_sku, p=launch_weight / launch_weight.sum()), sku_cat)
    price_latent = cat_price[sku_cat] + rng.normal(0.0, 0.35, n_sku)
    price_bucket = np.empty(n_sku, dtype=np.int64)
    price_bucket[np.argsort(price_latent, kind="stable")] = np.arange(n_sku) * 100 // n_sku
    name = cat_centroid[sku_cat] + rng.normal(0.0, 0.45, (n_sku, VECTOR_LEN))
    # launches are promoted alike: about the popularity of the SKU at the top 0.5%, so that most of
    # them sell (a Zipf draw would hand nearly all new-arrival sales to one or two of them)
    promoted = max(1.0, n_sku / 200) ** -ZIPF_EXPONENT * rng.lognormal(0.0, 0.5, n_sku)
    popularity = np.where(late, promoted, _zipf(rng, n_sku, ZIPF_EXPONENT))

    sku_topic = cat_topic[sku_cat]
    n_urls = n_sku + n_cat + n_gen
    return Catalogue(
        topic_price=topic_price,
        cat_topic=cat_topic,
        cat_centroid=cat_centroid,
        cat_id=scatter_ids(np.arange(n_cat), params.seed, kind=3),
        sku_cat=sku_cat,
        sku_price_latent=price_latent,
        sku_price=price_bucket,
        sku_name=name,
        sku_name_bytes=quantize(name),
        sku_launch=launch,
        sku_id=scatter_ids(np.arange(n_sku), params.seed, kind=4),
        url_id=scatter_ids(np.arange(n_urls), params.seed, kind=5),
        by_category=GroupedSampler.build(sku_cat, popularity, n_cat),
        by_topic=GroupedSampler.build(sku_topic, popularity, N_TOPICS),
        # the new-arrivals shelf shows the season's collection; the trickle sells through its category
        new_by_topic=GroupedSampler.build(sku_topic, popularity * in_wave, N_TOPICS),
        old_by_category=GroupedSampler.build(sku_cat, popularity * ~late, n_cat),
        old_by_topic=GroupedSampler.build(sku_topic, popularity * ~late, N_TOPICS),
        cats_by_topic=GroupedSampler.build(cat_topic, cat_weight, N_TOPICS),
        generic_urls=GroupedSampler.build(np.zeros(n_gen, dtype=np.int64), _zipf(rng, n_gen, 1.1), 1),
    )


def complement_categories(params: WorldParams) -> np.ndarray:
    """(C,) the category whose items follow a purchase in each category (never itself): a
    permutation from its own random stream, so drawing it changes nothing else in the world."""
    n = params.n_categories
    order = np.random.default_rng(np.random.SeedSequence([params.seed, 2])).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, -1)  # one cycle through every category
    return out
