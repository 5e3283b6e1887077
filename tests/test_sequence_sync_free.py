"""Sync-free sequence objectives: equal to a plain boolean-indexing reference, and no host sync on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_sequence import BEFORE, TINY, one_thread, random_window, window  # noqa: F401 (fixtures)

from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.encoders.sequence.config import make_config
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.objectives import _log_expected_count, distinct_candidates, objective_losses
from ubp.encoders.sequence.tokens import tokenize
from ubp.encoders.sequence.train import TrainingData
from ubp.encoders.sequence.objectives import vocabulary_tensors
from ubp.encoders.sequence.tokens import item_content, item_vocabulary, url_vocabulary

BF16 = dict(rtol=2**-8, atol=1e-5)


def reference_losses(model, hidden, batch, is_first, cfg, vocab, generator, urls=None, scale=None) -> dict[str, torch.Tensor]:
    """The objectives written the plain way: boolean indexing of target positions, torch.unique candidates."""
    after, hidden = hidden[:, 1:], hidden[:, :-1]
    event_type, ids, rows = batch["event_type"], batch["ids"], cfg.hash_rows
    position = torch.arange(event_type.shape[1])
    real = position[None] < batch["length"][:, None]
    is_now = batch.get("is_now", torch.zeros_like(real))
    after_now = torch.zeros_like(is_now)
    after_now[:, 1:] = is_now[:, :-1]
    predict = real & ~is_now & ((position[None] > 0) | is_first[:, None])
    scale = scale or {}

    def softmax(queries, keys, candidates, vectors, log_q=None, weights=None):
        logits = queries @ vectors.T / cfg.temperature
        logits = (logits - log_q if log_q is not None else logits).float()
        ce = F.cross_entropy(logits, torch.searchsorted(candidates, keys), reduction="none")
        return (ce if weights is None else ce * weights).sum()

    def count(mask, name):
        return scale.get(name, mask.sum().clamp(min=1))

    losses = {"netp": F.cross_entropy(model.next_type(hidden[predict]).float(), event_type[predict],
                                      reduction="sum") / count(predict, "netp")}
    gap = real & ~is_now & ~after_now & (position[None] > 0)
    losses["tdp"] = (model.next_gap(hidden[gap]).squeeze(-1).float() - batch["log_gap"][gap]).square().sum() / count(gap, "tdp")
    mask = predict & (event_type <= 2) & (ids[..., 0] > 0)
    keys = ids[..., 0][mask] * rows + ids[..., 1][mask]
    negatives = vocab.keys[torch.randint(len(vocab.keys), (cfg.uniform_negatives,), generator=generator)]
    candidates = torch.unique(torch.cat([keys, negatives]))
    log_q = _log_expected_count(candidates, vocab, len(keys), len(negatives))
    queries = F.normalize(model.item_query(hidden[mask]), dim=-1)
    if vocab.content is None:
        vectors = model.key_vectors(candidates, model.item_out)
    else:
        at = torch.searchsorted(vocab.keys, candidates)
        vectors = model.content_vectors({k: v[at] for k, v in vocab.content.items()})
    losses["nip"] = softmax(queries, keys, candidates, vectors, log_q) / count(mask, "nip")
    mask = predict & (event_type == 3) & (ids[..., 4] > 0)
    keys = ids[..., 4][mask] * rows + ids[..., 5][mask]
    candidates = torch.unique(keys)
    log_q = None if urls is None else _log_expected_count(candidates, urls, len(keys), 0)
    queries = F.normalize(model.url_query(hidden[mask]), dim=-1)
    losses["nup"] = softmax(queries, keys, candidates, model.key_vectors(candidates, model.url_out), log_q) / count(mask, "nup")
    valid = batch["future_valid"]
    labels = batch["future_ids"][valid]
    queries = F.normalize(model.future_query(after[valid]), dim=-1)
    present = labels[:, 0::2] > 0
    share = 1.0 / present.sum(1).clamp(min=1)
    total = torch.zeros(())
    for k, out in enumerate((model.item_out, model.item_out, model.url_out)):
        has = present[:, k]
        keys = labels[has, 2 * k] * rows + labels[has, 2 * k + 1]
        candidates = torch.unique(keys)
        total = total + softmax(queries[has], keys, candidates, model.key_vectors(candidates, out), weights=share[has])
    losses["future_window"] = total / count(valid, "future_window")
    has = batch["activity_valid"]
    error = (model.next_activity(after[has]).float() - batch["activity"][has]).square().mean(-1)
    losses["activity"] = error.sum() / count(has, "activity")
    return losses


@pytest.mark.parametrize("block", ["now", "before"])
@pytest.mark.parametrize("mode", ["every position", "capped", "compact"])
def test_losses_and_gradients_equal_the_plain_reference_on_the_same_batches(window: InputWindow, mode: str,
                                                                            block: str) -> None:
    """Fixed shapes (every position, or the host's power-of-two bound) as on a GPU, or compacted as on a CPU;
    for the block as it is (now token, item content, token-weighted losses, NUP logQ) and without those;
    with the optional objectives (future window, activity) on."""
    options = BEFORE if block == "before" else {}
    cfg = make_config("tiny", **TINY, **{**options, "future_window_weight": 0.5, "activity_weight": 0.5}, uniform_negatives=16)
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    data = TrainingData(tokens, cfg, seed=0, device=torch.device("cpu"))
    content = item_content(tokens, cfg.hash_rows) if cfg.item_content else None
    vocab = vocabulary_tensors(*item_vocabulary(tokens, cfg.hash_rows), content=content)
    urls = vocabulary_tensors(*url_vocabulary(tokens, cfg.hash_rows)) if cfg.nup_logq else None
    scale = data.target_scale()
    torch.manual_seed(0)
    model = SequenceModel(cfg).eval()
    rng = np.random.default_rng(0)
    for step in range(4):
        chunk = rng.choice(len(data.start), cfg.batch_size, replace=False)
        batch = data.batch(chunk, step)
        if mode == "every position":
            del batch["caps"]
        else:
            assert set(batch["caps"]) == {"nip", "nup", "future_window"}
        hidden = model(batch)
        seed = int(torch.randint(2**31, (1,), generator=torch.Generator().manual_seed(step)))
        ours = objective_losses(model, hidden, batch, batch["is_first"], cfg, vocab,
                                torch.Generator().manual_seed(seed), compact=mode == "compact", urls=urls, scale=scale)
        plain = reference_losses(model, hidden, batch, batch["is_first"], cfg, vocab, torch.Generator().manual_seed(seed),
                                 urls, scale)
        assert set(ours) == set(plain)
        for name in plain:
            torch.testing.assert_close(ours[name], plain[name], **BF16, msg=name)
        grads = [torch.autograd.grad(sum(x.values()), model.embed.table.weight, retain_graph=True)[0] for x in (ours, plain)]
        torch.testing.assert_close(grads[0], grads[1], **BF16)


def test_distinct_candidates_keep_each_valid_key_once_at_its_searchsorted_slot() -> None:
    keys = torch.tensor([7, 3, 7, 99, 3, 5])
    valid = torch.tensor([True, True, True, False, True, True])
    ordered, keep, table = distinct_candidates(keys, valid)
    assert ordered[keep].tolist() == [3, 5, 7] and keep.sum() == 3
    assert (table[~keep] == 0).all()
    assert keep[torch.searchsorted(ordered, torch.tensor([3, 5, 7]))].all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_training_steps_on_a_gpu_never_wait_for_the_device(tmp_path) -> None:
    from ubp.encoders.sequence.encoder import SequenceEncoder

    window = random_window(tmp_path, n_users=64)
    steps = 6

    def watch(step: int, losses: dict) -> None:
        if step == 2:  # after warm-up (allocator, kernel choice)
            torch.cuda.set_sync_debug_mode("error")
        if step == steps:
            torch.cuda.set_sync_debug_mode(0)

    encoder = SequenceEncoder("tiny", max_len=64, batch_size=8, max_steps=steps, future_window_weight=0.5)
    try:
        encoder.fit(window, Run(seed=0, device="cuda", show_progress=False), callback=watch)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert np.isfinite(encoder.transform(window, np.array([1, 2], dtype=np.int64))).all()
