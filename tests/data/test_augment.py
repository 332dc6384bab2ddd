"""Tensor augmentation: flips and rotations, batched, seeded, switchable, dtype-preserving."""

from __future__ import annotations

import pytest
import torch

from vcfnet.data.augment import Augmentation, augment_batch, rotate_batch


def batch(n: int = 16, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8)


def test_all_off_is_identity():
    x = batch()
    out = augment_batch(
        x,
        Augmentation(hflip=False, vflip=False, rotation_degrees=0),
        torch.Generator().manual_seed(0),
    )
    assert torch.equal(out, x)
    assert not Augmentation(False, False, 0).enabled


def test_hflip_flips_about_half_of_the_samples_exactly():
    x = batch(200)
    out = augment_batch(
        x,
        Augmentation(hflip=True, vflip=False, rotation_degrees=0),
        torch.Generator().manual_seed(0),
    )
    flipped = torch.tensor([torch.equal(o, s.flip(-1)) for o, s in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, s) for o, s in zip(out, x, strict=True)])
    assert bool((flipped | same).all())
    assert 60 < int(flipped.sum()) < 140


def test_vflip_flips_rows():
    x = batch(50)
    out = augment_batch(
        x,
        Augmentation(hflip=False, vflip=True, rotation_degrees=0),
        torch.Generator().manual_seed(0),
    )
    assert all(torch.equal(o, s) or torch.equal(o, s.flip(-2)) for o, s in zip(out, x, strict=True))
    assert not torch.equal(out, x)


def test_same_generator_seed_same_output_and_dtype_shape_kept():
    x = batch()
    aug = Augmentation()
    a = augment_batch(x, aug, torch.Generator().manual_seed(7))
    b = augment_batch(x, aug, torch.Generator().manual_seed(7))
    c = augment_batch(x, aug, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    xf = x.float().unsqueeze(1)
    out = augment_batch(xf, aug, torch.Generator().manual_seed(7))
    assert out.dtype == torch.float32 and out.shape == xf.shape


def test_rotation_by_90_degrees_matches_rot90():
    x = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)
    out = rotate_batch(x, torch.tensor([90.0]))
    assert torch.allclose(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-4) or torch.allclose(
        out, torch.rot90(x, -1, dims=(-2, -1)), atol=1e-4
    )
    assert torch.allclose(rotate_batch(x, torch.tensor([0.0])), x, atol=1e-5)


@pytest.mark.parametrize("degrees", [10.0, 45.0])
def test_rotation_fills_corners_with_black(degrees):
    x = torch.full((4, 32, 32), 200, dtype=torch.uint8)
    out = augment_batch(
        x,
        Augmentation(hflip=False, vflip=False, rotation_degrees=degrees),
        torch.Generator().manual_seed(3),
    )
    assert out[:, 16, 16].eq(200).all()  # centre kept
    assert (out.float().mean(dim=(1, 2)) < 200).all()  # some corners filled
