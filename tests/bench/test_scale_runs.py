"""bench.scale_runs' share of latent values that clip at the codebook's ends, on values whose
answer is known."""

import numpy as np

from bench.scale_runs import clipped_share


def test_clipped_share_counts_values_past_the_codebook_ends():
    z = np.array([-8.0, -7.4, 0.0, 3.0, 7.9, 8.3, 16.4, -15.4], np.float32)
    assert clipped_share(z, 1.0) == 0.0  # 16.4 and -15.4 round to 16 and -15: the ends, kept
    # At s = 2 they are -16, -15, 0, 6, 16, 17, 33, -31 after rounding: four past the ends.
    assert clipped_share(z, 2.0) == 4 / 8
    assert clipped_share(z, 0.5) == 0.0
    assert clipped_share(np.array([[20.0, 1.0]], np.float32), 1.0) == 0.5  # any shape
