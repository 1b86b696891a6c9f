"""A straightforward formulation of the reference AMDIM training step, for timing and checking.

This is the baseline of ``benchmarks/amdim_speed.py``: the 32x32 encoder of
Philip-Bachman/amdim-public (``model.py`` ``Encoder``: unpadded residual units whose second conv
starts at zero, "fake RKHS" heads on the last 5x5 and 7x7 activations, the 1x1 output after a
final batch norm) and the reference NCE (``costs.py`` ``NCE_MI_MULTI`` / ``LossMultiNCE``),
written the way the reference computes it: float32 NCHW, one encoder call per view, the list of
layer activations searched for the last 5x5 / 7x7 outputs, and for every comparison explicit
float masks of positives and negatives, a max shift and ``exp`` / ``log`` of masked sums. It is
not part of the package; it exists so speed claims compare against the reference's arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RefConvRes(nn.Module):
    """``conv1x1(ReLU(conv_kxk(x))) + shortcut(x)``, no BN (``ConvResNxN``, ``use_bn=False``).

    Shortcut: ``avgpool(x)`` (channels padded with zeros when widening); when narrowing
    (``n_out < n_in``) the reference's ``conv3``, a ``k x k`` strided conv with bias on ``x``.
    """

    def __init__(self, n_in: int, n_out: int, k: int, s: int) -> None:
        super().__init__()
        self.n_in, self.n_out, self.k, self.s = n_in, n_out, k, s
        self.conv1 = nn.Conv2d(n_in, n_out, k, s, 0, bias=False)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, 1, 0, bias=False)
        nn.init.constant_(self.conv2.weight, 0.0)
        self.conv3 = nn.Conv2d(n_in, n_out, k, s, 0, bias=True) if n_out < n_in else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(F.relu(self.conv1(x)))
        if self.conv3 is not None:
            return self.conv3(x) + branch
        short = F.avg_pool2d(x, self.k, self.s, 0)
        if self.n_out > self.n_in:
            short = F.pad(short, (0, 0, 0, 0, 0, self.n_out - self.n_in))
        return short + branch


def ref_block(n_in: int, n_out: int, k: int, s: int, depth: int) -> nn.Sequential:
    units = [RefConvRes(n_in, n_out, k, s)]
    units += [RefConvRes(n_out, n_out, 1, 1) for _ in range(depth - 1)]
    return nn.Sequential(*units)


class RefRKHS(nn.Module):
    """``BN(conv1x1(ReLU(conv1x1(x))) + shortcut(x))`` with a near-identity shortcut."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 1, bias=False)
        self.conv2 = nn.Conv2d(n_out, n_out, 1, bias=False)
        nn.init.constant_(self.conv2.weight, 0.0)
        self.shortcut = nn.Conv2d(n_in, n_out, 1, bias=True)
        if n_out >= n_in:
            with torch.no_grad():
                self.shortcut.weight.uniform_(-0.01, 0.01)
                for i in range(n_in):
                    self.shortcut.weight[i, i, 0, 0] = 1.0
        self.bn_out = nn.BatchNorm2d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_out(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class RefEncoder(nn.Module):
    """The reference 32x32 encoder with ``use_bn=False``; returns (r1, r5, r7) NCHW."""

    def __init__(self, ndf: int = 128, n_rkhs: int = 1024, n_depth: int = 3) -> None:
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(3, ndf, 3, 1, 0, bias=True), nn.ReLU())
        self.layers = nn.ModuleList(
            [
                stem,
                RefConvRes(ndf, ndf, 1, 1),
                ref_block(ndf, 2 * ndf, 4, 2, n_depth),
                ref_block(2 * ndf, 4 * ndf, 2, 2, n_depth),
                nn.Identity(),  # MaybeBatchNorm2d with use_bn=False
                ref_block(4 * ndf, 4 * ndf, 3, 1, n_depth),
                ref_block(4 * ndf, 4 * ndf, 3, 1, n_depth),
                RefConvRes(4 * ndf, n_rkhs, 3, 1),
                nn.BatchNorm2d(n_rkhs),
            ]
        )
        # find the last layer of each spatial size with a dry run, as the reference does
        acts = self._acts(torch.zeros(2, 3, 32, 32))
        self.dim2layer = {a.shape[2]: i for i, a in enumerate(acts) if a.shape[2] in (1, 5, 7)}
        self.rkhs5 = RefRKHS(acts[self.dim2layer[5]].shape[1], n_rkhs)
        self.rkhs7 = RefRKHS(acts[self.dim2layer[7]].shape[1], n_rkhs)

    def _acts(self, x: torch.Tensor) -> list[torch.Tensor]:
        acts = []
        for layer in self.layers:
            x = layer(x)
            acts.append(x)
        return acts

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        acts = self._acts(x)
        return (
            acts[self.dim2layer[1]],
            self.rkhs5(acts[self.dim2layer[5]]),
            self.rkhs7(acts[self.dim2layer[7]]),
        )


def ref_nce(
    r_src: torch.Tensor, r_trg: torch.Tensor, mask_mat: torch.Tensor, tclip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked NCE of ``NCE_MI_MULTI._model_scores``.

    ``r_src`` (N, D), ``r_trg`` (D, N * L), ``mask_mat`` (N, N) float identity.
    """
    n = mask_mat.shape[0]
    locs = r_trg.shape[1] // n
    d = r_src.shape[1]
    mask_pos = mask_mat.unsqueeze(2).expand(-1, -1, locs).float()
    mask_neg = 1.0 - mask_pos
    raw = torch.mm(r_src, r_trg).float().reshape(n, n, locs) / d**0.5
    reg = 5e-2 * (raw**2).mean()
    raw = tclip * torch.tanh(raw / tclip)
    pos = (mask_pos * raw).sum(dim=1)  # (N, L)
    neg = (mask_neg * raw - tclip * mask_pos).reshape(n, -1)
    mask_neg = mask_neg.reshape(n, -1)
    neg_max = neg.max(dim=1, keepdim=True)[0]
    neg_sumexp = (mask_neg * torch.exp(neg - neg_max)).sum(dim=1, keepdim=True)
    all_lse = torch.log(torch.exp(pos - neg_max) + neg_sumexp)
    nce = (pos - neg_max) - all_lse
    return -nce.mean(), reg


class ReferenceAMDIM(nn.Module):
    """Reference encoder + ``LossMultiNCE`` (1t5, 1t7, 5t5, both directions, regulariser).

    ``forward(x1, x2)`` takes two normalised views and returns the training loss
    ``l_1t5 + l_1t7 + l_5t5 + reg``.
    """

    def __init__(
        self, ndf: int = 128, n_rkhs: int = 1024, n_depth: int = 3, tclip: float = 20.0
    ) -> None:
        super().__init__()
        self.encoder = RefEncoder(ndf, n_rkhs, n_depth)
        self.tclip = tclip
        masks = torch.zeros(25, 1, 5, 5, dtype=torch.bool)
        for i in range(25):
            masks[i, 0, i // 5, i % 5] = True
        self.register_buffer("masks_r5", masks)

    def _src5(self, r5: torch.Tensor) -> torch.Tensor:
        n, d = r5.shape[:2]
        idx = torch.randint(0, 25, (n,), device=r5.device)
        return torch.masked_select(r5, self.masks_r5[idx]).reshape(n, d)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        r1_1, r5_1, r7_1 = self.encoder(x1)
        r1_2, r5_2, r7_2 = self.encoder(x2)
        n, d = r1_1.shape[:2]
        mask = torch.eye(n, device=x1.device)
        s1_1, s1_2 = r1_1.reshape(n, d), r1_2.reshape(n, d)
        s5_1, s5_2 = self._src5(r5_1), self._src5(r5_2)
        t5_1 = r5_1.permute(1, 0, 2, 3).reshape(d, -1)
        t7_1 = r7_1.permute(1, 0, 2, 3).reshape(d, -1)
        t5_2 = r5_2.permute(1, 0, 2, 3).reshape(d, -1)
        t7_2 = r7_2.permute(1, 0, 2, 3).reshape(d, -1)
        c = self.tclip
        l15a, g15a = ref_nce(s1_1, t5_2, mask, c)
        l15b, g15b = ref_nce(s1_2, t5_1, mask, c)
        l17a, g17a = ref_nce(s1_1, t7_2, mask, c)
        l17b, g17b = ref_nce(s1_2, t7_1, mask, c)
        l55a, g55a = ref_nce(s5_1, t5_2, mask, c)
        l55b, g55b = ref_nce(s5_2, t5_1, mask, c)
        loss = 0.5 * (l15a + l15b) + 0.5 * (l17a + l17b) + 0.5 * (l55a + l55b)
        reg = 0.5 * (g15a + g15b + g17a + g17b + g55a + g55b)
        return loss + reg
