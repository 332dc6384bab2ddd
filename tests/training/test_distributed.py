"""The pure pieces of data-parallel training: each rank's share of a batch, its own stream."""

from __future__ import annotations

import numpy as np
import pytest

from vcfnet.training.distributed import Dist, rank_share, rank_stream


@pytest.mark.parametrize(("batch_size", "world"), [(8, 1), (8, 2), (8, 4), (6, 3), (7, 2)])
def test_rank_shares_are_disjoint_and_make_up_the_batch(batch_size, world):
    batch = np.random.default_rng(0).integers(0, 100, batch_size)  # repeats allowed, as drawn
    shares = [rank_share(batch, Dist(rank=r, world_size=world)) for r in range(world)]
    positions = [
        rank_share(np.arange(batch_size), Dist(rank=r, world_size=world)) for r in range(world)
    ]
    assert sorted(np.concatenate(positions).tolist()) == list(range(batch_size))
    assert sorted(np.concatenate(shares).tolist()) == sorted(batch.tolist())
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert rank_share(list(batch), Dist(rank=world - 1, world_size=world)) == list(shares[-1])


def test_single_process_keeps_the_shared_stream_ranks_get_their_own():
    shared = np.random.default_rng([0, 1])
    assert rank_stream(shared, [0, 1], Dist()) is shared
    draws = [rank_stream(shared, [0, 1], Dist(rank=r, world_size=2)).random(4) for r in range(2)]
    assert not np.allclose(draws[0], draws[1])
    again = rank_stream(shared, [0, 1], Dist(rank=1, world_size=2)).random(4)
    np.testing.assert_array_equal(again, draws[1])  # seeded: a resumed epoch draws alike
