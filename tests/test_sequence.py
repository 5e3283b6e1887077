"""Sequential encoder: tokenisation, causality, padding, sampled softmax, resume, determinism, DDP."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from handmade_window import CUTOFF, EVENTS, PRODUCTS, handmade_window

import ubp.device
from ubp.encoders import create
from ubp.config import ConfigError, to_dict
from ubp.data.window import InputWindow, write_window
from ubp.encoders.base import Run
from ubp.encoders.registry import REGISTRY
from ubp.encoders.sequence.config import ADDED_OPTIONS, make_config
from ubp.encoders.sequence.encoder import MODEL_FILE, SequenceEncoder
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.objectives import objective_losses, sampled_softmax, vocabulary_tensors
from ubp.encoders.sequence.tokens import batch_width, hash_rows_of, item_vocabulary, make_batch, tokenize, training_chunks
from ubp.errors import InputError
from ubp.layout import STREAM_SCHEMA, VECTOR_LEN
from ubp.training import CheckpointMismatch

TINY = dict(max_len=16, batch_size=4)
# the block without time to the cutoff, whole-history read-out, token-weighted losses, NUP logQ and item content
BEFORE = dict(ADDED_OPTIONS)


def random_window(root: Path, n_users: int = 10, seed: int = 0) -> InputWindow:
    """Random histories of 0..40 events with huge, non-contiguous ids (nothing may assume small ids)."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 41, n_users)
    client = np.repeat(rng.choice(2**62, n_users, replace=False), n)
    m = len(client)
    kind = rng.choice(5, m, p=[0.1, 0.15, 0.05, 0.6, 0.1])
    sku_pool = rng.choice(2**62, 12, replace=False) - 2**61
    sku = sku_pool[rng.integers(0, 12, m)]
    is_item = kind <= 2
    has_text = is_item | (kind == 4)
    frame = pl.DataFrame(
        {
            "client_id": client,
            "timestamp": [CUTOFF - timedelta(minutes=int(x)) for x in rng.integers(1, 60 * 24 * 60, m)],
            "event_type": kind,
            "sku": np.where(is_item, sku, 0),
            "category": np.where(is_item, sku % 5, 0),
            "price": rng.integers(0, 100, m),
            "url": rng.choice(2**62, 20)[rng.integers(0, 20, m)],
            "tokens": rng.integers(0, 256, (m, VECTOR_LEN)).tolist(),
        }
    ).with_columns(
        pl.when(pl.col("event_type") <= 2).then(pl.col("sku")).alias("sku"),
        pl.when(pl.col("event_type") <= 2).then(pl.col("category")).alias("category"),
        pl.when(pl.col("event_type") == 3).then(pl.col("url")).alias("url"),
        pl.when(pl.Series(has_text)).then(pl.col("tokens")).alias("tokens"),
    )
    return write_window(frame.lazy().cast(STREAM_SCHEMA), PRODUCTS, CUTOFF, root / "input", events_per_shard=150)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one thread avoids oversubscription stalls (8x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> InputWindow:
    return random_window(tmp_path_factory.mktemp("seq"))


def fit(window: InputWindow, seed: int = 0, work_dir: Path | None = None, callback=None, **options) -> SequenceEncoder:
    encoder = create("sequence", preset="tiny", **{**TINY, "epochs": 10.0, "max_steps": 6, **options})
    return encoder.fit(window, Run(seed=seed, work_dir=work_dir, show_progress=False), callback=callback)


def test_tokenize_hand_made_log(tmp_path: Path) -> None:
    tokens = tokenize(handmade_window(tmp_path), hash_rows=1024, price_buckets=100)
    assert sorted(tokens.client_ids) == [1, 2, 3, 5]  # user 4 has no events; user 5's cutoff event is hidden
    u = int(np.flatnonzero(tokens.client_ids == 2)[0])
    s = slice(tokens.offsets[u], tokens.offsets[u + 1])
    assert tokens.event_type[s].tolist() == [3, 3, 1]
    time = tokens.time_features(np.arange(s.start, s.stop))
    np.testing.assert_allclose(time["log_gap"], np.log1p([0, 1799 / 3600, 1800 / 3600]), rtol=1e-6)
    np.testing.assert_allclose(time["log_age"], np.log1p([0, 1799 / 86400, 3599 / 86400]), rtol=1e-6)
    assert time["weekday"].tolist() == [1, 1, 1] and time["hour"].tolist() == [10, 10, 10]  # a Tuesday
    assert tokens.has_tokens[s].tolist() == [False, False, True]
    assert tokens.price[s].tolist() == [0, 0, 96]  # bucket + 1; visits have no price
    ids = tokens.ids[s]
    assert (ids[:2, :4] == 0).all() and (ids[:2, 4:] > 0).all()  # visits: url only
    assert (ids[2, :4] > 0).all() and (ids[2, 4:] == 0).all()  # cart: sku and category only
    assert ids.max() < 1024 and (ids[0, 4:] != ids[1, 4:]).any()  # urls 900 and 901 differ


def test_training_chunks_align_to_the_end() -> None:
    tokens = tokenize_lengths([5, 0, 3])
    start, end, first = training_chunks(tokens, max_len=2)
    assert list(zip(start.tolist(), end.tolist(), first.tolist())) == [
        (3, 5, False), (1, 3, False), (0, 1, True), (6, 8, False), (5, 6, True)
    ]


def tokenize_lengths(lengths: list[int]):
    from ubp.encoders.sequence.tokens import Tokens

    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    n = int(offsets[-1])
    return Tokens(
        client_ids=np.arange(len(lengths)), offsets=offsets, event_type=np.zeros(n, np.uint8),
        timestamp=np.zeros(n, np.int64), row=np.zeros(n, np.int32), row_ids=np.zeros((1, 6), np.int32),
        row_price=np.zeros(1, np.int16), row_text=np.zeros((1, 16), np.uint8), row_has_text=np.zeros(1, bool),
    )


def test_model_is_causal(window: InputWindow) -> None:
    cfg = make_config("tiny", **TINY)
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    torch.manual_seed(0)
    model = SequenceModel(cfg).eval()
    u = int(np.argmax(tokens.lengths))
    start, end = tokens.offsets[u : u + 1], np.minimum(tokens.offsets[u + 1 : u + 2], tokens.offsets[u] + 15)
    batch = make_batch(tokens, start, end, now=np.array([tokens.now]))
    hidden = model(batch)
    assert hidden.shape == (1, int(end[0] - start[0]) + 2, cfg.width)  # the start state, the events, the now token
    j = 5  # change event 5: states 0..5 (which have seen events 0..4) must not move
    changed = {k: v.clone() for k, v in batch.items()}
    changed["event_type"][0, j] = (changed["event_type"][0, j] + 1) % 5
    changed["ids"][0, j] = 7
    changed["log_gap"][0, j] += 3.0
    after = model(changed)
    torch.testing.assert_close(after[:, : j + 1], hidden[:, : j + 1], rtol=0, atol=0)
    assert not torch.allclose(after[:, j + 1], hidden[:, j + 1])


def _tiny_model(window: InputWindow, **options) -> tuple:
    """(config, tokens, item vocabulary, a seeded untrained tiny model in eval mode) of the window."""
    cfg = make_config("tiny", **TINY, **options)
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    vocab = vocabulary_tensors(*item_vocabulary(tokens, cfg.hash_rows))
    torch.manual_seed(0)
    return cfg, tokens, vocab, SequenceModel(cfg).eval()


def test_padding_changes_neither_losses_nor_embeddings(window: InputWindow) -> None:
    cfg, tokens, vocab, model = _tiny_model(window, **BEFORE)
    u = int(np.argmax(tokens.lengths))
    s = tokens.offsets[u : u + 1]
    exact = make_batch(tokens, s, s + 6)
    padded = make_batch(tokens, s, s + 14)  # the 8 extra slots hold real events, then are declared padding
    padded["length"][:] = 6
    losses = assert_same_outputs(model, cfg, vocab, exact, padded)
    assert set(losses) == {"nip", "nup", "netp", "tdp"}


def assert_same_outputs(model: SequenceModel, cfg, vocab, a: dict, b: dict) -> dict:
    """Two batches of the same chunks give the same losses and user embeddings; returns the losses."""
    first = torch.ones(len(a["length"]), dtype=torch.bool)
    losses = [objective_losses(model, model(x), x, first, cfg, vocab, torch.Generator().manual_seed(3)) for x in (a, b)]
    for name in losses[0]:
        torch.testing.assert_close(losses[0][name], losses[1][name])
    torch.testing.assert_close(model.user_embedding(a), model.user_embedding(b))
    return losses[0]


def test_batch_width_rounds_up_to_the_multiple_within_the_limit() -> None:
    assert batch_width(np.array([3, 70])) == 70
    assert batch_width(np.array([3, 70]), multiple=64) == 127  # with the start position: attention length 128
    assert batch_width(np.array([3, 63]), multiple=64) == 63
    assert batch_width(np.array([3, 64]), multiple=64) == 127
    assert batch_width(np.array([3, 70]), multiple=64, limit=100) == 100
    assert batch_width(np.array([3, 250]), multiple=64, limit=256) == 255
    assert batch_width(np.array([3, 256]), multiple=64, limit=256) == 256  # the model pads attention to 320
    assert batch_width(np.array([], dtype=np.int64), multiple=64) == 63


def test_a_wider_batch_gives_the_same_losses_and_embeddings(window: InputWindow) -> None:
    """Padding to a fixed width (as on a GPU) changes nothing at the real positions."""
    cfg, tokens, vocab, model = _tiny_model(window)
    order = np.argsort(tokens.lengths)[::-1][:3]
    start = tokens.offsets[order]
    end = np.minimum(tokens.offsets[order + 1], start + 10)
    width = batch_width(end - start + 1, multiple=64, limit=cfg.max_len)
    now = np.full(3, tokens.now)
    exact, wide = make_batch(tokens, start, end, now=now), make_batch(tokens, start, end, width=width, now=now)
    assert wide["event_type"].shape == (3, cfg.max_len) and exact["event_type"].shape[1] == int((end - start).max()) + 1
    assert_same_outputs(model, cfg, vocab, exact, wide)


def test_sampled_softmax_with_every_item_is_the_full_softmax() -> None:
    g = torch.Generator().manual_seed(0)
    keys = torch.tensor([-(2**60), -5, 3, 2**40, 2**61])  # sorted, far from 0..V-1
    vectors = torch.randn(5, 8, generator=g)
    queries = torch.randn(6, 8, generator=g)
    target_index = torch.tensor([0, 4, 2, 2, 1, 3])
    full = F.cross_entropy(queries @ vectors.T / 0.1, target_index, reduction="sum")
    torch.testing.assert_close(sampled_softmax(queries, keys[target_index], keys, vectors, 0.1).sum(), full)
    constant = torch.full((5,), math.log(3.0))  # a uniform sample's logQ shifts every logit alike
    torch.testing.assert_close(sampled_softmax(queries, keys[target_index], keys, vectors, 0.1, constant).sum(), full)


def test_transform_shapes_order_and_empty_history(tmp_path: Path) -> None:
    hand = handmade_window(tmp_path)
    encoder = fit(hand, max_steps=3)
    ids = np.array([3, 4, 1, 99, 1], dtype=np.int64)
    out = encoder.transform(hand, ids)
    # last state, mean state, and per event type the mean and the last state after its events (2 + 2 * 5 parts)
    assert out.shape == (5, 12 * 32) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[2], out[4])  # same client, same row
    np.testing.assert_array_equal(out[1], out[3])  # no events: the learned empty-history state
    assert not np.allclose(out[0], out[1])
    np.testing.assert_array_equal(encoder.transform(hand, ids[[2, 0]]), out[[2, 0]])
    encoder.save(tmp_path / "model")
    np.testing.assert_array_equal(REGISTRY["sequence"].load(tmp_path / "model").transform(hand, ids), out)


def test_a_model_saved_before_the_added_options_loads_as_it_was(tmp_path: Path) -> None:
    """A saved config without the options added later (time to cutoff, whole history, ...) loads with
    them off, as it was trained, not with today's defaults (whose weights it lacks)."""
    hand = handmade_window(tmp_path)
    encoder = fit(hand, max_steps=2, **BEFORE)
    ids = np.array([1, 2, 3], dtype=np.int64)
    saved = {"config": {k: v for k, v in to_dict(encoder.config).items() if k not in BEFORE},
             "state": encoder.model_.state_dict()}
    (tmp_path / "old").mkdir()
    torch.save(saved, tmp_path / "old" / MODEL_FILE)
    old = REGISTRY["sequence"].load(tmp_path / "old")
    assert old.config == encoder.config
    np.testing.assert_array_equal(old.transform(hand, ids), encoder.transform(hand, ids))


def test_empty_window_gives_the_empty_history_state(tmp_path: Path) -> None:
    empty = write_window(pl.LazyFrame(schema=STREAM_SCHEMA), PRODUCTS, CUTOFF, tmp_path / "input")
    out = fit(empty).transform(empty, np.array([1, 2], dtype=np.int64))
    assert out.shape == (2, 12 * 32) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], out[1])


def test_log_without_item_events_trains(tmp_path: Path) -> None:
    """A shop that logs visits and searches only: no item vocabulary, so NIP has nothing to draw."""
    rows = [r for r in EVENTS if r[2] in ("page_visit", "search_query")]
    hand = handmade_window(tmp_path, rows=rows)
    out = fit(hand, max_steps=3).transform(hand, np.array([1, 2, 3], dtype=np.int64))
    assert out.shape == (3, 12 * 32) and np.isfinite(out).all()


def test_same_seed_same_result_other_seed_differs(window: InputWindow) -> None:
    ids = np.sort(tokenize(window, 2, 2).client_ids)
    a, b, c = (fit(window, seed=s).transform(window, ids) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_cpu_bf16_is_repeatable_and_close_to_float32(window: InputWindow) -> None:
    """bf16 autocast while training on a CPU still gives one result per seed."""
    ids = np.sort(tokenize(window, 2, 2).client_ids)
    encoder = fit(window, cpu_bf16=True)
    a, b = encoder.transform(window, ids), fit(window, cpu_bf16=True).transform(window, ids)
    f32 = fit(window, cpu_bf16=False).transform(window, ids)
    np.testing.assert_array_equal(a, b)
    assert 0 < np.abs(a - f32).max() < 0.25 * np.abs(f32).max()
    # the embedding stays float32: a client embedded alone gets the row it gets among all (in bf16
    # it moved with the width of the batch it was padded into)
    alone = np.concatenate([encoder.transform(window, ids[i : i + 1]) for i in range(len(ids))])
    np.testing.assert_allclose(alone, a, rtol=1e-5, atol=1e-6)


def test_cpu_bf16_auto_follows_the_cpu_and_other_values_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(ubp.device, "cpu_has_native_bf16", lambda: native)
        assert make_config("tiny").trains_in_bf16(cpu) is native
        assert make_config("tiny", cpu_bf16=True).trains_in_bf16(cpu) and not make_config("tiny", cpu_bf16=False).trains_in_bf16(cpu)
        assert make_config("tiny", cpu_bf16=False).trains_in_bf16(gpu)
    for bad in ("yes", 1, 0.0):
        with pytest.raises(ConfigError, match='cpu_bf16 must be true, false or "auto"'):
            create("sequence", preset="tiny", cpu_bf16=bad)


class Killed(Exception):
    pass


def assert_resumes_exactly(window: InputWindow, work_dir: Path, unbroken: dict, kill_at: int, **options) -> None:
    """A fit killed after step `kill_at` and run again in `work_dir` ends with the unbroken run's weights."""

    def kill(step: int, losses: dict) -> None:
        if step == kill_at:
            raise Killed

    with pytest.raises(Killed):
        fit(window, work_dir=work_dir, callback=kill, **options)
    resumed = fit(window, work_dir=work_dir, **options).model_.state_dict()
    for name, value in unbroken.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_resume_after_kill_matches_an_unbroken_run(window: InputWindow, tmp_path: Path) -> None:
    options = dict(max_steps=8, checkpoint_every=4, warmup_steps=3)
    unbroken = fit(window, work_dir=tmp_path / "a", **options).model_.state_dict()
    # killed one step past the checkpoint at 4: that step is lost and redone
    assert_resumes_exactly(window, tmp_path / "b", unbroken, 5, **options)
    with pytest.raises(CheckpointMismatch, match=r"other settings: config\.lr \(checkpoint 0\.001, now 0\.5\)"):
        fit(window, work_dir=tmp_path / "b", **{**options, "lr": 0.5})


def test_objectives_are_switchable_and_config_is_checked(window: InputWindow) -> None:
    seen = []
    fit(window, max_steps=1, nip_weight=0.0, nup_weight=0.0, callback=lambda s, l: seen.append(set(l)))
    assert seen == [{"netp", "tdp"}]
    with pytest.raises(ConfigError, match="unknown key"):
        create("sequence", preset="tiny", widht=8)
    with pytest.raises(ConfigError, match="unknown preset"):
        create("sequence", preset="huge")
    with pytest.raises(ConfigError, match="at least one"):
        create("sequence", preset="tiny", nip_weight=0.0, nup_weight=0.0, netp_weight=0.0, tdp_weight=0.0)


def test_bad_event_type_names_file_column_and_row(tmp_path: Path) -> None:
    good = handmade_window(tmp_path, events_per_shard=100)
    shard = good.shards[0]
    pl.read_parquet(shard).with_columns(pl.lit(9, pl.UInt8).alias("event_type")).write_parquet(shard)
    with pytest.raises(InputError, match=r"shard-00000\.parquet: column 'event_type': .*0\.\.4.*'client_id': 1"):
        tokenize(good, 16, 10)


def _ddp_worker(rank: int, root: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{root}/rendezvous", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        window = InputWindow.open(Path(root) / "world")
        encoder = fit(window, max_steps=3)
        torch.save(encoder.model_.state_dict(), Path(root) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    random_window(tmp_path / "world")
    torch.multiprocessing.spawn(_ddp_worker, args=(str(tmp_path),), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    single = fit(InputWindow.open(tmp_path / "world"), max_steps=3).model_.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert any(not torch.allclose(a[n], single[n]) for n in a)  # each rank saw only half the batches


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    from ubp.encoders.sequence.train import _schedule

    factor = _schedule(make_config("tiny", warmup_steps=100, min_lr_ratio=0.1), total=50)  # warm-up capped at 5
    assert [round(factor(s), 6) for s in (0, 4)] == [0.2, 1.0]
    assert factor(5) == 1.0 and round(factor(50), 6) == 0.1
    assert round(factor(5 + 45 // 2), 2) == round(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 22 / 45)), 2)


def test_tokens_equal_the_per_event_formulas(window: InputWindow) -> None:
    """The compact tokens give every event the features the model always got (so the same embeddings)."""
    tokens = tokenize(window, 1024, 100)
    ts = pl.col("timestamp")
    df = window.stream().collect().sort(["client_id", "timestamp", "event_type"], maintain_order=True).with_columns(
        log_gap=(ts.diff().over("client_id").dt.total_microseconds().fill_null(0) / 3.6e9).log1p(),
        log_age=((ts - ts.min().over("client_id")).dt.total_microseconds() / 8.64e10).log1p(),
        weekday=ts.dt.weekday() - 1, hour=ts.dt.hour(),
        price=(pl.col("price").cast(pl.Int32).clip(0, 99) + 1).fill_null(0),
        has_tokens=pl.col("tokens").arr.get(0).is_not_null(),
    )
    order = np.argsort(tokens.client_ids, kind="stable")  # shards hold disjoint users; compare user by user
    index = np.concatenate([np.arange(tokens.offsets[u], tokens.offsets[u + 1]) for u in order])
    time = tokens.time_features(index)
    for name in ("log_gap", "log_age"):
        np.testing.assert_array_equal(time[name], df[name].to_numpy().astype(np.float32), err_msg=name)
    for name in ("weekday", "hour"):
        np.testing.assert_array_equal(time[name], df[name].to_numpy(), err_msg=name)
    np.testing.assert_array_equal(tokens.price[index], df["price"].to_numpy())
    np.testing.assert_array_equal(tokens.has_tokens[index], df["has_tokens"].to_numpy())
    text = df.select(pl.col("tokens").arr.get(i).fill_null(0).alias(f"t{i}") for i in range(16)).to_numpy()
    np.testing.assert_array_equal(tokens.tokens[index], text)
    sku = hash_rows_of(df["sku"], 1, 1024, salt=0)
    np.testing.assert_array_equal(tokens.ids[index, 1], sku)


def test_tokens_are_written_once_as_memory_maps(window: InputWindow, tmp_path: Path) -> None:
    tokens = tokenize(window, 1024, 100, folder=tmp_path)
    (folder,) = tmp_path.glob("tokens-*")
    assert isinstance(tokens.timestamp, np.memmap) and isinstance(tokens.row, np.memmap)
    per_event = sum(a.itemsize for a in (tokens.event_type, tokens.timestamp, tokens.row))
    assert per_event == 13  # type, time, item row; items, calendar and gaps are not stored per event
    stamp = (folder / "row.raw").stat().st_mtime_ns
    again = tokenize(window, 1024, 100, folder=tmp_path)  # another process or rank opens the same files
    assert (folder / "row.raw").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.row, tokens.row)
    in_memory = tokenize(window, 1024, 100)
    np.testing.assert_array_equal(np.asarray(in_memory.ids), np.asarray(tokens.ids))
