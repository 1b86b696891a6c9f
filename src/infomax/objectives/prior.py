"""Prior matching for Deep InfoMax: adversarial (the paper) and Gaussian-KL (non-adversarial).

1. Adversarial (Hjelm et al., ICLR 2019, Sec. 3.3; rdevon/DIM
   ``cortex_DIM/models/prior_matching.py`` ``PriorMatching`` and
   ``cortex_DIM/models/discriminator.py`` ``Discriminator``): the code ``Y`` is squashed by a
   sigmoid and compared with samples of a uniform prior on ``[0, 1]^d`` by a discriminator ``D``
   (linear 1000 -> ReLU -> linear 200 -> ReLU -> linear 1). ``D`` is trained on the detached code
   with the GAN loss ``softplus(-D(prior)) + softplus(D(code))`` plus a gradient penalty
   (``cortex_DIM/functions/gradient_penalty.py`` ``contrastive_gradient_penalty``:
   ``mean_i ||grad_x D(x_i)||^2`` on prior and on code samples, averaged; weight 1.0 in the current
   code, 0.5 in the first version ``DIM.py``). The encoder gets the non-saturating generator loss
   ``softplus(-D(sigmoid(Y)))`` times gamma.
2. Non-adversarial (Su, "Deep INFOMAX" blog post and bojone/infomax, 2018): a Gaussian encoder
   ``q(z|x) = N(mu, diag(exp(logvar)))`` with reparameterised ``z`` and the closed-form
   ``KL(q(z|x) || N(0, I))`` (Kingma & Welling, 2014, appendix B) weighted by gamma.

All formulas run in float32, also under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from infomax.rng import Gen, normal, uniform

__all__ = [
    "AdversarialPrior",
    "PriorDiscriminator",
    "discriminator_loss",
    "gaussian_kl",
    "generator_loss",
    "gradient_penalty",
    "reparameterize",
    "uniform_prior_sample",
]


def uniform_prior_sample(like: torch.Tensor, gen: Gen = None) -> torch.Tensor:
    """Float32 samples of the uniform prior on ``[0, 1]^d``, shaped and placed like ``like``
    (one row per image; ``gen``: see :mod:`infomax.rng`; ``None``: the global RNG of the
    device)."""
    if gen is None:
        return torch.rand(like.shape, device=like.device, dtype=torch.float32)
    return uniform(like.shape, gen, like.device)


def discriminator_loss(d_prior: torch.Tensor, d_code: torch.Tensor) -> torch.Tensor:
    """GAN discriminator loss ``E_prior[softplus(-D)] + E_code[softplus(D)]`` (Goodfellow 2014).

    This is ``-(E_pos - E_neg)`` of rdevon/DIM's ``GAN`` measure (``gan_losses.py``): ``D`` is
    pushed up on prior samples and down on codes.

    Shape:
        ``d_prior``: (N, ...) logits on prior samples; ``d_code``: (M, ...) logits on codes.
    """
    return F.softplus(-d_prior.float()).mean() + F.softplus(d_code.float()).mean()


def generator_loss(d_code: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``E_code[softplus(-D)] = -E[log sigmoid(D)]``.

    Goodfellow et al. (2014), sec. 3; rdevon/DIM ``generator_loss(..., 'non-saturating')``.
    """
    return F.softplus(-d_code.float()).mean()


def gradient_penalty(discriminator: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``mean_i ||grad_x D(x_i)||^2`` at detached ``inputs`` (Mescheder et al., 2018; rdevon/DIM).

    The graph is kept (``create_graph=True``) so the penalty trains the discriminator; since the
    inputs are detached, no gradient reaches whatever produced them.
    """
    with torch.enable_grad():
        x = inputs.detach().float().requires_grad_(True)
        out = discriminator(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in nats, summed over dims, mean over the batch.

    Closed form ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)`` (Kingma & Welling, 2014, app. B).

    Shape:
        ``mu``, ``logvar``: (N, D) -> scalar.
    """
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, gen: Gen = None) -> torch.Tensor:
    """A sample ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` (Kingma & Welling, 2014)."""
    mu, logvar = mu.float(), logvar.float()
    return mu + normal(mu.shape, gen, mu.device) * (0.5 * logvar).exp()


class PriorDiscriminator(nn.Sequential):
    """The prior-matching discriminator: linear 1000 -> ReLU -> linear 200 -> ReLU -> linear 1.

    Reference: rdevon/DIM ``prior_matching.py`` ``discriminator_layers`` (no batch norm).

    Shape:
        (N, code_dim) -> (N, 1) logits.
    """

    def __init__(self, code_dim: int, hidden: Sequence[int] = (1000, 200)) -> None:
        layers: list[nn.Module] = []
        d = code_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, 1))
        super().__init__(*layers)


class AdversarialPrior(nn.Module):
    """Holds the discriminator matching ``sigmoid(Y)`` to the uniform prior on ``[0, 1]^d``.

    ``forward(code)`` returns the encoder's generator loss (gradients reach ``code``; to be
    minimised with respect to the encoder only) and the discriminator's loss (computed on the
    detached code; to be minimised with respect to :meth:`parameters` only).

    Args:
        code_dim: size of the code.
        hidden: discriminator widths (reference: 1000, 200).
        penalty: gradient-penalty weight (reference: 1.0).
    """

    def __init__(self, code_dim: int, hidden: Sequence[int] = (1000, 200), penalty: float = 1.0):
        super().__init__()
        if penalty < 0:
            raise ValueError(f"gradient penalty weight must be >= 0, got {penalty}")
        self.discriminator = PriorDiscriminator(code_dim, hidden)
        self.penalty = float(penalty)

    def forward(self, code: torch.Tensor, gen: Gen = None) -> dict[str, torch.Tensor]:
        with torch.autocast(device_type=code.device.type, enabled=False):
            fake = torch.sigmoid(code.float())
            real = uniform_prior_sample(fake, gen)
            d_fake_detached = self.discriminator(fake.detach())
            d_real = self.discriminator(real)
            d_loss = discriminator_loss(d_real, d_fake_detached)
            if self.penalty > 0:
                gp = 0.5 * (
                    gradient_penalty(self.discriminator, real)
                    + gradient_penalty(self.discriminator, fake)
                )
                d_loss = d_loss + self.penalty * gp
            else:
                gp = torch.zeros((), device=code.device)
            g_loss = generator_loss(self.discriminator(fake))
        return {
            "generator_loss": g_loss,
            "discriminator_loss": d_loss,
            "gradient_penalty": gp.detach(),
            "d_prior": d_real.detach().mean(),
            "d_code": d_fake_detached.detach().mean(),
        }
