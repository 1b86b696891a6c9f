"""DIM(L)-NCE of ``infomax.objectives.dim.DIM`` against the straightforward rdevon/DIM formulation
of ``benchmarks/reference_dim.py`` (NCHW 1x1-conv critic networks, explicit logit tensor with the
image's own locations masked at -10): with the reference's weights mapped onto ``DIM`` (as
``benchmarks/dim_speed.py`` does), the same batch gives the same loss and the same gradients."""

from __future__ import annotations

import pytest
import torch

from infomax.objectives.dim import CIFAR10_MEAN, CIFAR10_STD, DIM
from infomax.transforms import Normalize


@pytest.fixture(scope="module")
def bench():
    from benchmarks import dim_speed

    return dim_speed


def _pair(bench, units: int):
    torch.manual_seed(0)
    ref = bench.ReferenceLocalDIM(mi_units=units)
    dim = DIM(preset="dim-l-infonce", prior="none", gamma=0.0, mi_units=units)
    bench.load_from_reference(dim, ref, critic=True)
    return ref, dim


def test_same_weights_same_loss_and_gradients(bench):
    ref, dim = _pair(bench, units=64)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=g)
    loss_ref = ref(Normalize(CIFAR10_MEAN, CIFAR10_STD)(x))
    loss_dim = dim.training_losses(x)["loss"]
    assert loss_ref.item() > 0.5  # not a trivially solved batch
    assert loss_dim.item() == pytest.approx(loss_ref.item(), rel=1e-5, abs=1e-5)
    loss_ref.backward()
    loss_dim.backward()
    grads = [
        (ref.encoder.c1[0].weight.grad, dim.encoder.convs[0][0].weight.grad),
        (ref.encoder.y.weight.grad, dim.encoder.head.weight.grad),
        (
            ref.local_net.block_nonlinear[0].weight.grad.flatten(1),
            dim.local_critic.local_net.block[0].weight.grad,
        ),
        (
            ref.global_net.linear_shortcut.weight.grad.flatten(1),
            dim.local_critic.code_net.shortcut.weight.grad,
        ),
    ]
    for ga, gb in grads:
        scale = ga.abs().max()
        assert scale > 0
        assert torch.allclose(gb, ga, rtol=1e-3, atol=1e-4 * float(scale))


def test_weight_mapping_rejects_other_sizes(bench):
    torch.manual_seed(0)
    ref = bench.ReferenceLocalDIM(mi_units=64)
    dim = DIM(preset="dim-l-infonce", prior="none", gamma=0.0, mi_units=32)
    with pytest.raises(ValueError, match="names or shapes differ"):
        bench.load_from_reference(dim, ref, critic=True)
    bench.load_from_reference(dim, ref, critic=False)  # the encoder alone maps
    assert torch.equal(dim.encoder.head.weight, ref.encoder.y.weight)


def test_last_bit_twin_and_the_chaos_verdict(bench):
    """The twin differs from the model by exactly one ulp in every float; the verdict calls a
    split chaos when the twin drifts at least half as far as the variant, a step otherwise."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    twin = bench.last_bit_twin(model)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        if a.is_floating_point():
            assert torch.equal(b, torch.nextafter(a, torch.full_like(a, float("inf")))), name
        else:
            assert torch.equal(a, b), name

    def results(twin_diff: float) -> dict:
        row = {"ratio_to_reference": 2.5, "held_out_loss_minus_reference": 0.3}
        return {
            "reference": {"held_out_loss_minus_reference": 0.0},
            "reference-ulp": {"ratio_to_reference": 1.0, "held_out_loss_minus_reference": 0.5,
                              "train_loss_max_abs_diff_to_reference": twin_diff},
            "infomax-2048": {**row, "train_loss_max_abs_diff_to_reference": 2.0},
        }  # fmt: skip

    held = {"reference": 10.0}
    chaos, step = results(1.5), results(0.01)
    bench.diagnose(chaos, held, "reference", 2.0, 0.02)
    bench.diagnose(step, held, "reference", 2.0, 0.02)
    assert chaos["infomax-2048"]["split"] == "chaos" and step["infomax-2048"]["split"] == "step"
    # +0.3 is above 2% of 10 but within the twin's own distance (0.5): matching loss
    assert chaos["infomax-2048"]["matching_loss"] and chaos["infomax-2048"]["meets_target"]
