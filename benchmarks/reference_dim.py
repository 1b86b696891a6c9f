"""A straightforward formulation of the reference local Deep InfoMax step (rdevon/DIM), for timing.

This is the baseline of ``benchmarks/dim_speed.py``: the paper's 32x32 encoder, the reference
code's encode-and-dot-product critic (``MI1x1ConvNet``: conv1x1 -> BN -> ReLU -> conv1x1 plus a
near-identity linear shortcut, then LayerNorm over channels, ``mi_units`` = 2048) on the 128x8x8
local map and on Y, and the reference NCE loss (``cortex_DIM/functions/dim_losses.py``
``nce_loss``: each local position's positive against every location of every other image, the
image's own other locations masked by subtracting 10), written the way the reference computes it:
NCHW convolutions, float32, permutes and an explicit concatenation of the logits. It is not part of
the package; it exists so speed claims compare against the reference's arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RefEncoder(nn.Module):
    """The DIM 32x32 encoder (rdevon/DIM ``cortex_DIM/configs/convnets.py``), local map = conv 2.

    Convolutions followed by batch norm have no bias (``create_conv_layers``: ``bias=not
    batch_norm``), so the weights map one to one onto ``infomax``'s ``dim32``.
    """

    def __init__(self, in_channels: int = 3, code_dim: int = 64) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            conv = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)
            return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())

        self.c1 = block(in_channels, 64)
        self.c2 = block(64, 128)
        self.c3 = block(128, 256)
        self.fc = nn.Sequential(nn.Linear(256 * 4 * 4, 1024), nn.BatchNorm1d(1024), nn.ReLU())
        self.y = nn.Linear(1024, code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local = self.c2(self.c1(x))
        h = self.c3(local)
        y = self.y(self.fc(h.flatten(1)))
        return local, y


class RefMI1x1ConvNet(nn.Module):
    """The reference critic network, evaluated as 1x1 convolutions on NCHW maps."""

    def __init__(self, n_input: int, n_units: int) -> None:
        super().__init__()
        self.block_nonlinear = nn.Sequential(
            nn.Conv2d(n_input, n_units, 1, bias=False),
            nn.BatchNorm2d(n_units),
            nn.ReLU(),
            nn.Conv2d(n_units, n_units, 1),
        )
        self.linear_shortcut = nn.Conv2d(n_input, n_units, 1, bias=False)
        self.ln = nn.LayerNorm(n_units)
        if n_units >= n_input:
            with torch.no_grad():
                w = torch.empty(n_units, n_input).uniform_(-0.01, 0.01)
                w[torch.arange(n_input), torch.arange(n_input)] = 1.0
                self.linear_shortcut.weight.copy_(w[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block_nonlinear(x) + self.linear_shortcut(x)
        return self.ln(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def reference_nce_loss(l: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The reference local NCE loss: ``l`` is (N, units, locations), ``g`` is (N, units)."""
    n, units, n_locs = l.shape
    l_p = l.permute(0, 2, 1)
    u_p = torch.matmul(l_p, g.unsqueeze(2))  # N x locs x 1
    u_n = torch.mm(g, l_p.reshape(-1, units).t()).reshape(n, n, n_locs)
    mask = torch.eye(n, device=l.device).unsqueeze(2)
    n_mask = 1 - mask
    u_n = n_mask * u_n - 10.0 * (1 - n_mask)
    u_n = u_n.reshape(n, -1).unsqueeze(1).expand(-1, n_locs, -1)
    pred = torch.cat([u_p, u_n], dim=2)
    return -F.log_softmax(pred, dim=2)[:, :, 0].mean()


class ReferenceLocalDIM(nn.Module):
    """Encoder + local and global critic networks + NCE, as in the reference local DIM."""

    def __init__(self, mi_units: int = 2048) -> None:
        super().__init__()
        self.encoder = RefEncoder()
        self.local_net = RefMI1x1ConvNet(128, mi_units)
        self.global_net = RefMI1x1ConvNet(64, mi_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local, y = self.encoder(x)
        l_enc = self.local_net(local)
        g_enc = self.global_net(y[:, :, None, None])
        n, units = l_enc.shape[:2]
        return reference_nce_loss(l_enc.reshape(n, units, -1), g_enc.reshape(n, units))
