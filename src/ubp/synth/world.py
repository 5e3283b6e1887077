"""`generate`: build a synthetic world directory chunk by chunk, then its oracle and world.json."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ubp.errors import UsageError
from ubp.io import save_npy, swap_dir, write_text
from ubp.layout import EVENT_TYPES
from ubp.synth.activity import active_days, sessions_per_day
from ubp.synth.catalogue import Catalogue, build_catalogue, complement_categories
from ubp.synth.ids import scatter_ids
from ubp.synth.oracle import Hidden, write_oracle
from ubp.synth.params import CHUNK_USERS, INPUT_DAYS, START, WorldParams
from ubp.synth.sessions import DAY, Events, simulate_events
from ubp.synth.users import Users, draw_users
from ubp.synth.writer import RawWriter, write_properties

CLIENT_IDS = 1  # `kind` of scatter_ids for clients
NO_BUY = np.iinfo(np.int64).max


@dataclass(frozen=True)
class WorldSummary:
    """What `ubp synth` prints: sizes, the realism figures, and the cost of generating."""

    path: Path
    params: WorldParams
    counts: dict[str, int]
    n_relevant: int
    buyers_share: float  # relevant clients with a buy in the input window
    cutoff_day: int
    seconds: float
    peak_rss_mib: float
    events_per_user: dict[str, float] = field(default_factory=dict)  # quantiles over users with events

    def describe(self) -> str:
        total = sum(self.counts.values())
        follow = f", complement follow-ups {self.params.complements:g}" if self.params.complements else ""
        lines = [f"{self.path}: synthetic world, seed {self.params.seed}{follow}"]
        for name, n in self.counts.items():
            lines.append(f"  {name:<17} {n:>12,}  ({100 * n / max(total, 1):.1f}%)")
        cutoff = START.date().fromordinal(START.date().toordinal() + self.cutoff_day)
        quantiles = ", ".join(f"{k} {v:g}" for k, v in self.events_per_user.items())
        lines += [
            f"  events            {total:>12,}",
            f"  users {self.params.n_users:,}, relevant clients {self.n_relevant:,}, "
            f"with a buy before {cutoff}: {100 * self.buyers_share:.1f}%",
            f"  events per user with events: {quantiles}",
            f"  {self.seconds:.1f} s, peak RSS {self.peak_rss_mib:,.0f} MiB",
        ]
        return "\n".join(lines)


@dataclass
class _Kept:
    """Per relevant client, what the oracle and the summary need after streaming."""

    ids: list[np.ndarray] = field(default_factory=list)
    users: list[Users] = field(default_factory=list)
    active: list[np.ndarray] = field(default_factory=list)  # packed bits of the active/dormant chain
    first_buy: list[np.ndarray] = field(default_factory=list)
    events_per_user: list[np.ndarray] = field(default_factory=list)  # every user with events
    max_buy: int = -1


def _values(name: str, e: Events, cat: Catalogue) -> np.ndarray:
    if name == "page_visit":
        return cat.url_id[e.value]
    if name == "search_query":
        return e.value
    return cat.sku_id[e.value]


def _simulate_chunk(k: int, params: WorldParams, cat: Catalogue, complement_of: np.ndarray, writer: RawWriter,
                    kept: _Kept) -> None:
    """Users [k·CHUNK_USERS, …): their own random stream, so chunks do not depend on each other."""
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 1, k]))
    index = np.arange(k * CHUNK_USERS, min((k + 1) * CHUNK_USERS, params.n_users))
    users = draw_users(index, params, cat, rng)
    active = active_days(users, rng)
    events = simulate_events(users, sessions_per_day(users, active, rng), cat, rng, params.complements, complement_of)
    client_id = scatter_ids(index, params.seed, CLIENT_IDS)
    for name, e in events.items():
        writer.write(name, client_id[e.user], e.t, _values(name, e, cat))

    n_input = np.zeros(len(users), dtype=np.int64)
    n_all = np.zeros(len(users), dtype=np.int64)
    for e in events.values():
        n_input += np.bincount(e.user[e.t < INPUT_DAYS * DAY], minlength=len(users))
        n_all += np.bincount(e.user, minlength=len(users))
    pick = rng.random(len(users)) < np.where(users.engaged, 1.0, params.casual_relevant_share)
    rows = np.flatnonzero((n_input > 0) & pick)
    buys = events["product_buy"]
    first_buy = np.full(len(users), NO_BUY)
    np.minimum.at(first_buy, buys.user, buys.t)
    kept.ids.append(client_id[rows])
    kept.users.append(users.take(rows))
    kept.active.append(np.packbits(active[rows], axis=1))
    kept.first_buy.append(first_buy[rows])
    kept.events_per_user.append(n_all[n_all > 0])
    kept.max_buy = max(kept.max_buy, int(buys.t.max(initial=-1)))


def generate(out: Path, n_users: int | None, scale: str | None, seed: int, show_progress: bool,
             complements: float = 0.0) -> "WorldSummary":
    """Write a world: raw event files, product_properties, input/relevant_clients.npy, oracle/, world.json.

    The output appears only when complete (built under a hidden sibling, then renamed).
    """
    began = time.perf_counter()
    params = WorldParams.for_scale(scale, n_users, seed, complements)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "world.json").is_file():
        raise UsageError(f"{out}: exists and is not a synthetic world (no world.json); refusing to overwrite it")
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "input").mkdir(parents=True)
    try:
        cat = build_catalogue(params)
        complement_of = complement_categories(params)
        write_properties(tmp, cat.sku_id, cat.cat_id[cat.sku_cat], cat.sku_price, cat.sku_name_bytes)
        writer = RawWriter(tmp)
        kept = _Kept()
        try:
            for k in tqdm(range(params.n_chunks), desc="synth", unit="chunk", disable=not show_progress):
                _simulate_chunk(k, params, cat, complement_of, writer, kept)
        finally:
            writer.close()
        # The split puts the train-target start at (last buy − 27 days) at 00:00.
        cutoff = kept.max_buy // DAY - 27 if kept.max_buy >= 0 else INPUT_DAYS
        ids = np.concatenate(kept.ids)
        save_npy(tmp / "input" / "relevant_clients.npy", ids)
        # Memory: the oracle is the peak at the full scale; drop the per-chunk parts once joined and read
        # only the cutoff's bit of the packed chain (unpacked, it is N_DAYS bytes per relevant client).
        users = Users.concat(kept.users)
        kept.users.clear()
        day = range(8 * kept.active[0].shape[1])[cutoff - 1]  # the unpacked bits' column, as numpy indexes it
        active_last = ((np.concatenate([a[:, day // 8] for a in kept.active]) >> (7 - day % 8)) & 1).astype(bool)
        kept.active.clear()
        write_oracle(tmp / "oracle", ids, Hidden(users, active_last, cutoff, cat))
        del users
        buyers = float(np.mean(np.concatenate(kept.first_buy) < cutoff * DAY)) if len(ids) else 0.0
        per_user = np.concatenate(kept.events_per_user)
        quantiles = {f"p{q}": float(np.percentile(per_user, q)) for q in (10, 50, 90, 99)} if len(per_user) else {}
        info = params.to_json() | {
            "scale": scale if n_users is None else None,
            "cutoff_day": int(cutoff),
            "train_target_start": START.date().fromordinal(START.date().toordinal() + int(cutoff)).isoformat(),
            "n_relevant_clients": int(len(ids)),
            "events": writer.counts,
            "relevant_with_input_buy": round(buyers, 4),
        }
        write_text(tmp / "world.json", json.dumps(info, indent=2) + "\n")
        swap_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return WorldSummary(
        path=out,
        params=params,
        counts={e: writer.counts[e] for e in EVENT_TYPES},
        n_relevant=len(ids),
        buyers_share=buyers,
        cutoff_day=int(cutoff),
        seconds=time.perf_counter() - began,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        events_per_user=quantiles,
    )
