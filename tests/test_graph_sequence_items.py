"""The graph block's `item_encoder` option: items as a learned map of the sequence model's content vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from handmade_window import PRODUCTS, handmade_window
from stand_ins import assert_same_weights

from ubp.encoders import create
from ubp.config import ConfigError
from ubp.encoders.base import Run
from ubp.encoders.graph.encoder import GraphEncoder
from ubp.encoders.graph.items import product_content, product_events
from ubp.encoders.graph.model import ContentItems, TwHIN
from ubp.encoders.sequence.encoder import SequenceEncoder
from ubp.encoders.sequence.tokens import make_batch, tokenize

SMALL = {"dim": 8, "max_users": 0, "epochs": 3, "batch_size": 3, "checkpoint_every": 1}
TINY_SEQUENCE = {"preset": "tiny", "max_len": 16, "batch_size": 4, "max_steps": 6}
SEQUENCE = {"item_encoder": "sequence", "sequence_options": TINY_SEQUENCE}


def test_unknown_or_unused_options_are_config_errors():
    with pytest.raises(ConfigError, match="item_encoder"):
        create("graph", item_encoder="transformer")
    with pytest.raises(ConfigError, match="sequence_options"):
        create("graph", sequence_options={"preset": "tiny"})  # ignored by the default item table


def test_content_items_are_a_dense_map_of_rescaled_frozen_features():
    features = torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])  # rms row norm = sqrt((9 + 16) / 3)
    model = TwHIN(n_users=2, n_items=3, n_relations=2, dim=4, learn_scale=True, item_features=features)
    torch.testing.assert_close(model.items.features, features / (25 / 3) ** 0.5)
    w, rel = model.items.weight, model.relations.weight
    expected = F.normalize(w @ model.items.features[1] + rel[0], dim=0)
    torch.testing.assert_close(model.targets(torch.tensor([1]), torch.tensor([0]))[0], expected)
    assert [p is w for p in model.dense_parameters()] == [False, False, False, True]
    assert len(model.sparse_parameters()) == 1 and "items.features" in model.state_dict()


def test_default_is_the_item_table(tmp_path):
    window = handmade_window(tmp_path)
    run = Run(seed=4, show_progress=False)
    default = create("graph", **SMALL).fit(window, run)
    table = create("graph", **SMALL, item_encoder="table").fit(window, run)
    assert isinstance(default.model_.items, torch.nn.Embedding) and default.sequence_ is None
    assert_same_weights(default.model_, table.model_)
    ids = np.array([1, 2, 3, 4, 5])
    np.testing.assert_array_equal(default.transform(window, ids), table.transform(window, ids))


def test_product_events_join_the_catalogue_in_order():
    frame = product_events(PRODUCTS, np.array([4, 99, 1]))
    assert frame["client_id"].to_list() == [0, 1, 2] and frame["sku"].to_list() == [4, 99, 1]
    assert frame["category"].to_list() == [30, None, 10] and frame["price"].to_list() == [95, None, 5]
    assert frame["url"].null_count() == 3 and frame["tokens"].to_list()[1] is None


def test_sequence_items_fit_transform_frozen_and_save_load(tmp_path, monkeypatch):
    window = handmade_window(tmp_path)
    fitted: list[dict[str, torch.Tensor]] = []
    real_fit = SequenceEncoder.fit

    def recording_fit(self, window, run, callback=None):
        out = real_fit(self, window, run, callback)
        fitted.append({k: v.clone() for k, v in out.model_.state_dict().items()})
        return out

    monkeypatch.setattr(SequenceEncoder, "fit", recording_fit)
    enc = create("graph", **SMALL, **SEQUENCE).fit(window, Run(seed=0, work_dir=tmp_path / "work", show_progress=False))
    assert (tmp_path / "work" / "graph" / "sequence.ckpt").is_file()  # apart from a standalone sequence block's
    assert len(fitted) == 1 and np.isfinite(enc.last_loss_)
    for name, value in enc.sequence_.model_.state_dict().items():  # graph training left the sequence model as fit
        assert torch.equal(value, fitted[0][name]), name

    items = enc.model_.items
    assert isinstance(items, ContentItems) and enc.items_.tolist() == [1, 2, 3, 4]
    assert items.weight.shape == (8, 32) and not items.features.requires_grad
    content = product_content(enc.sequence_.model_, enc.sequence_.config, window.products(), enc.items_)
    rms = content.square().sum(1).mean().sqrt()
    torch.testing.assert_close(items.features * rms, content)
    # an item's vector is the content part of the sequence model's embedding of a real event of it:
    # client 2's third event is its cart addition of sku 4
    cfg = enc.sequence_.config
    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    event = int(tokens.offsets[int(np.flatnonzero(tokens.client_ids == 2)[0])]) + 2
    with torch.no_grad():
        seen = enc.sequence_.model_.embed.content(make_batch(tokens, np.array([event]), np.array([event + 1])))[0, 0]
    torch.testing.assert_close(content[3], seen)

    ids = np.array([1, 2, 3, 4, 5, 1], dtype=np.int64)
    out = enc.transform(window, ids)
    assert out.shape == (6, 8) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out[[0, 1, 4]], axis=1), 1.0, rtol=1e-5)  # 5: inductive fallback
    np.testing.assert_array_equal(out[2:4], 0.0)

    enc.save(tmp_path / "graph")
    loaded = GraphEncoder.load(tmp_path / "graph")
    assert loaded.config == enc.config and isinstance(loaded.sequence_, SequenceEncoder)
    np.testing.assert_array_equal(loaded.transform(window, ids), out)


def test_sequence_items_on_a_window_without_edges(tmp_path):
    # a removal is an item event for the sequence block but no graph edge: the graph has no item
    rows = [(1, "2024-02-20 10:00:00", "page_visit", 900), (2, "2024-02-21 10:00:00", "remove_from_cart", 3)]
    window = handmade_window(tmp_path, rows=rows)
    out = create("graph", **SMALL, **SEQUENCE).fit(window, Run(seed=0, show_progress=False)).transform(window, np.array([1, 2]))
    np.testing.assert_array_equal(out, np.zeros((2, 8), np.float32))
