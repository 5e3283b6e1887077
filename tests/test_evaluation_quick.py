"""The quick probe's parts: its AdamW (torch's bits), its settings (what the docs say), no torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ubp.evaluation.adamw import AdamW
from ubp.evaluation.model import Net
from ubp.evaluation.trainer import FULL, QUICK


def _train(make_optimizer) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 37, generator=gen), (torch.rand(300, 5, generator=gen) < 0.3).float()
    torch.manual_seed(1)
    net = Net(37, 5, thin=48, wide=96, blocks=1)
    optimizer = make_optimizer(net.parameters())
    for _ in range(3):
        for lo in range(0, 300, 64):
            loss = F.binary_cross_entropy_with_logits(net(x[lo : lo + 64]), y[lo : lo + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return [p.detach() for p in net.parameters()]


def test_adamw_is_torchs_fused_adamw_bit_for_bit():
    ours = _train(lambda params: AdamW(params, lr=3e-3))
    theirs = _train(lambda params: torch.optim.AdamW(params, lr=3e-3, fused=True))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_adamw_over_stacked_parameters_steps_each_slice_as_alone():
    gen = torch.Generator().manual_seed(2)
    stacked = [torch.randn(3, 7, 13, generator=gen), torch.randn(3, 101, generator=gen)]
    alone = [[p[i].clone() for p in stacked] for i in range(3)]
    together, apart = AdamW(stacked, lr=1e-2), [AdamW(params, lr=1e-2) for params in alone]
    for _ in range(4):
        grads = [torch.randn(p.shape, generator=gen) for p in stacked]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        together.step()
        for i, params in enumerate(alone):
            for p, g in zip(params, grads):
                p.grad = g[i].clone()
            apart[i].step()
    assert all(torch.equal(stacked[j][i], alone[i][j]) for i in range(3) for j in range(2))


def test_a_quick_network_never_imports_torch_dynamo():
    """torch.optim's first optimizer imports torch._dynamo: seconds of a quick command's start."""
    code = ("import sys, numpy as np, torch\n"
            "from ubp.evaluation.trainer import QUICK, train_and_score\n"
            "x = torch.randn(300, 8).half(); y = torch.rand(300, 2) < 0.3\n"
            "train_and_score(x, y, y, np.ones(2), QUICK)\n"
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _protocol_table() -> dict[str, tuple[str, str]]:
    """docs/protocol.md §7's table: setting -> (full, quick), as written."""
    text = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
    section = text[text.index("## 7. The quick probe"):]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): (cells[1].strip(), cells[2].strip()) for cells in rows[1:] if len(cells) == 3}


def test_protocol_settings_are_what_the_docs_say():
    table = _protocol_table()
    for column, protocol in ((0, FULL), (1, QUICK)):
        assert table["widths (thin / wide)"][column] == f"{protocol.thin} / {protocol.wide}"
        assert table["residual blocks"][column] == str(protocol.blocks)
        assert table["batch"][column] == str(protocol.batch_size)
        assert table["epochs"][column] == str(protocol.epochs)
        assert float(table["learning rate"][column]) == protocol.lr
        assert table["seed"][column] == str(protocol.seed)
        assert table["trunk matmuls"][column].split()[0] == (protocol.autocast or "float32")
        assert table["AdamW"][column].split()[0] == ("torch.optim" if protocol.torch_optim else "fused")
        assert table["CPU threads"][column] == (str(protocol.threads) if protocol.threads else "all")
