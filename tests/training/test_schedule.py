import pytest
import torch

from vcfnet.training.schedule import one_cycle


@pytest.mark.parametrize("total", [1, 2, 9, 10, 11, 40, 400])
def test_one_cycle_runs_every_step_and_peaks_at_max_lr(total):
    """Any step count, 10 included (PyTorch's OneCycleLR divides by zero on a 1-step warm-up)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = one_cycle(opt, 0.5, total)
    rates = []
    for _ in range(total):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert max(rates) <= 0.5 + 1e-12 and (total < 3 or max(rates) > 0.4)
