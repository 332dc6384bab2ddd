"""In-memory crop tensors and epoch batches (shuffled, balanced, DDP-sharded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.factories import make_tiny_dataset
from vcfnet.data.dataset import (
    EpochBatches,
    balanced_weights,
    decode_crops,
    label_indices,
    load_split,
)
from vcfnet.errors import InputError
from vcfnet.preprocess import stack_crops


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ds"), n_per_class=3, size=40)


def test_load_split_reads_only_that_split_as_uint8(dataset):
    data = load_split(dataset, "train", 32)
    assert data.images.dtype == torch.uint8 and data.images.shape == (9, 32, 32)
    assert data.labels.dtype == torch.int64 and data.class_counts() == [3, 3, 3]
    assert set(data.rows["split"]) == {"train"}
    first = np.asarray(Image.open(dataset / data.rows["crop_path"][0]))
    assert np.array_equal(
        data.images[0].numpy(), stack_crops([first], 32)[0]
    )  # shared preprocessing


def test_threaded_decode_equals_serial(dataset):
    paths = sorted((dataset / "crops").glob("*.png"))
    assert np.array_equal(decode_crops(paths, 24, workers=1), decode_crops(paths, 24, workers=3))


def test_unreadable_crop_and_unknown_label_are_input_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="prepare"):
        decode_crops([bad], 8, workers=1)
    with pytest.raises(InputError, match="fracture"):
        label_indices(["acute", "fracture"])


def test_epoch_batches_depend_only_on_seed_and_epoch():
    labels = torch.arange(20) % 3
    a, b = EpochBatches(labels, 6, seed=1), EpochBatches(labels, 6, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.batches(2), b.batches(2), strict=True))
    assert not torch.equal(torch.cat(a.batches(0)), torch.cat(a.batches(1)))
    assert sorted(torch.cat(a.batches(0)).tolist()) == list(range(20))  # 20 = 6+6+6+2, last 2 kept
    assert [len(x) for x in a.batches(0)] == [6, 6, 6, 2]


def test_single_sample_last_batch_is_dropped():
    assert [len(x) for x in EpochBatches(torch.zeros(13, dtype=torch.int64), 6).batches(0)] == [
        6,
        6,
    ]


def test_ranks_share_out_one_permutation_like_distributed_sampler():
    labels = torch.arange(11) % 3
    full = EpochBatches(labels, 4, seed=3).indices(0)
    shards = [EpochBatches(labels, 2, seed=3, rank=r, world_size=2).indices(0) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6  # padded to 12
    assert torch.equal(shards[0], torch.cat([full, full[:1]])[0::2])
    assert set(torch.cat(shards).tolist()) == set(range(11))


def test_balanced_sampler_and_weights_even_out_classes():
    labels = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    w = balanced_weights(labels)
    counts = torch.bincount(labels).float()
    assert torch.allclose(w * counts, (w * counts)[0].expand(3))  # each class the same total weight
    drawn = labels[EpochBatches(labels, 10, seed=0, balanced=True).indices(0)]
    assert torch.bincount(drawn, minlength=3).min() > 15
