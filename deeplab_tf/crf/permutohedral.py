"""The permutohedral lattice of Adams, Baek & Davis (2010) in standard TensorFlow ops.

`build_lattice` places every point of a feature set in the lattice exactly as Krähenbühl's
densecrf (`permutohedral.cpp`, the code behind pydensecrf) does, in the same float32 arithmetic:
the same elevation into d+1 dimensions, rounding to the nearest remainder-0 point (ties to
even, as its SSE path), ranking, barycentric weights and simplex vertex keys. Where densecrf uses
a hash table, this module packs each integer vertex key into one int64 (mixed radix over the
observed key ranges), finds the distinct vertices with `tf.unique` and looks blur neighbours up
with `tf.searchsorted` on the sorted keys, so the lattice is rebuilt per call inside any graph
(tf.function, SavedModel, TF Serving) for any image size.

`lattice_filter` is densecrf's `Permutohedral::compute`: splat with the barycentric weights
(`tf.math.unsorted_segment_sum`), blur with the [1/2, 1, 1/2] kernel along each of the d+1
lattice directions (missing neighbours count as zero), slice back with the same weights, times
densecrf's constant 1 / (1 + 2^-d). The result approximates sum_j exp(-|f_i - f_j|^2 / 2) v_j
(self term included) up to that scale.
"""

import collections

import numpy as np
import tensorflow as tf

Lattice = collections.namedtuple("Lattice", ["offsets", "weights", "blur_neighbours"])
Lattice.__doc__ = """A lattice built over P points of a d-dimensional feature set.

offsets: int32 [P, d+1]. Row (1-based, 0 = none) of each point's d+1 enclosing simplex
    vertices in the vertex table.
weights: float32 [P, d+1]. Barycentric weights of those vertices (each row sums to 1).
blur_neighbours: int32 [d+1, 2, M+1]. Per lattice direction, the rows of the two neighbours of
    each table row (0 where the neighbour is not in the lattice; row 0 maps to 0).
The feature dimension d is static: `weights.shape[-1] - 1`.
"""

MAX_KEY_BITS = 62
"""Packed vertex keys must fit in this many bits (int64 with headroom)."""


def _scale_factors(d: int) -> np.ndarray:
    """Returns densecrf's float32 diagonal of E scaled by the inverse filter std (Adams p.5-6)."""
    inv_std_dev = np.float32(np.sqrt(2.0 / 3.0) * (d + 1))
    return np.array([1.0 / np.sqrt((i + 2) * (i + 1)) * np.float64(inv_std_dev) for i in range(d)], np.float32)


def _elevate(features):
    """Returns the float32 [P, d+1] elevation of float32 features [P, d] onto the plane
    sum(x) = 0, summed in densecrf's order (from the last feature to the first)."""
    d = features.shape[-1]
    scaled = features * _scale_factors(d)
    tail = tf.cumsum(scaled, axis=-1, exclusive=True, reverse=True)
    first = tail[:, :1] + scaled[:, :1]
    return tf.concat([first, tail - np.arange(1, d + 1, dtype=np.float32) * scaled], axis=-1)


def _simplex(elevated):
    """Returns (remainder-0 point int32 [P, d+1], rank int32 [P, d+1], barycentric weights
    float32 [P, d+1]) of the simplex enclosing each elevated point, as densecrf computes them."""
    d1 = elevated.shape[-1]
    down = np.float32(1.0) / np.float32(d1)
    rounded = tf.round(elevated * down)  # half to even, as _mm_cvtps_epi32 / _mm_round_ps
    rem0 = rounded * np.float32(d1)
    excess = tf.reduce_sum(rounded, axis=-1, keepdims=True)
    diff = elevated - rem0
    less = tf.cast(diff[:, :, None] < diff[:, None, :], tf.float32)  # less[p, i, j] = diff_i < diff_j
    later = np.triu(np.ones((d1, d1), np.float32), 1)  # later[i, j] = j > i
    # densecrf: for i < j, rank_i += [diff_i < diff_j], else rank_j += 1.
    rank = tf.reduce_sum(less * later, axis=2) + tf.reduce_sum((1.0 - less) * later, axis=1) + excess
    wrap = np.float32(d1) * (tf.cast(rank < 0, tf.float32) - tf.cast(rank >= d1, tf.float32))
    rank, rem0 = rank + wrap, rem0 + wrap
    position = (d1 - 1) - tf.cast(rank, tf.int32)
    share = (elevated - rem0) * down
    slots = tf.one_hot(position, d1 + 1) - tf.one_hot(position + 1, d1 + 1)
    barycentric = tf.reduce_sum(share[:, :, None] * slots, axis=1)
    first = barycentric[:, :1] + (1.0 + barycentric[:, d1:])
    weights = tf.concat([first, barycentric[:, 1:d1]], axis=-1)
    return tf.cast(rem0, tf.int32), tf.cast(rank, tf.int32), weights


class _KeyCodec:
    """Packs vertex keys (group id, remainder r, d coordinates all congruent to r mod d+1) into
    int64 codes, injectively for every key within one step of the keys it was built from."""

    def __init__(self, keys, num_groups):
        d1 = keys.shape[-1] + 1
        self.d1 = d1
        quotient = tf.reshape(tf.math.floordiv(keys, d1), [-1, d1 - 1])
        self.low = tf.reduce_min(quotient, axis=0) - 1
        self.span = tf.cast(tf.reduce_max(quotient, axis=0) - self.low + 2, tf.int64)
        bits = tf.reduce_sum(tf.math.log(tf.cast(self.span, tf.float64))) + tf.math.log(
            tf.cast(num_groups * d1, tf.float64)
        )
        self.check = tf.debugging.assert_less(
            bits / np.log(2.0),
            tf.constant(float(MAX_KEY_BITS), tf.float64),
            message="permutohedral lattice keys do not fit in int64: a sigma is too small for this image",
        )

    def encode(self, groups, remainders, keys):
        """Returns int64 codes of keys int32 [..., d] with remainders and group ids int32 [...]."""
        code = tf.cast(groups, tf.int64) * self.d1 + tf.cast(remainders, tf.int64)
        quotient = tf.cast(tf.math.floordiv(keys, self.d1) - self.low, tf.int64)
        for i in range(self.d1 - 1):
            code = code * self.span[i] + quotient[..., i]
        return code

    def decode(self, codes):
        """Returns (groups, remainders, keys int32 [M, d]) of int64 codes [M]."""
        quotients = []
        for i in reversed(range(self.d1 - 1)):
            quotients.append(tf.cast(codes % self.span[i], tf.int32) + self.low[i])
            codes = codes // self.span[i]
        remainders = tf.cast(codes % self.d1, tf.int32)
        keys = tf.stack(quotients[::-1], axis=-1) * self.d1 + remainders[:, None]
        return tf.cast(codes // self.d1, tf.int32), remainders, keys


def build_lattice(features, groups=None, num_groups=1) -> Lattice:
    """Returns the `Lattice` of float32 features [P, d] (d static).

    `groups` (int32 [P], values in 0..num_groups-1) keeps points of different groups (e.g. the
    images of a batch) in disjoint lattices, as if each group were built alone.
    """
    d = features.shape[-1]
    d1 = d + 1
    groups = tf.zeros(tf.shape(features)[:1], tf.int32) if groups is None else groups
    rem0, rank, weights = _simplex(_elevate(features))
    remainder = np.arange(d1, dtype=np.int32)[:, None]  # vertex r of the simplex, [d+1, 1]
    # densecrf's canonical simplex: key_i = rem0_i + r - (d+1) [rank_i > d - r].
    keys = rem0[:, None, :d] + remainder - d1 * tf.cast(rank[:, None, :d] > d - remainder, tf.int32)
    codec = _KeyCodec(keys, num_groups)
    with tf.control_dependencies([codec.check]):
        codes = codec.encode(groups[:, None], remainder[:, 0], keys)
    vertices, index = tf.unique(tf.reshape(codes, [-1]), out_idx=tf.int32)
    offsets = tf.reshape(index, [-1, d1]) + 1
    neighbours = _blur_neighbours(codec, vertices)
    return Lattice(offsets, weights, neighbours)


def _blur_neighbours(codec, vertices):
    """Returns int32 [d+1, 2, M+1]: 1-based rows of each vertex's two neighbours per direction."""
    d1 = codec.d1
    order = tf.argsort(vertices)
    sorted_codes = tf.gather(vertices, order)
    groups, remainders, keys = codec.decode(vertices)
    directions = []
    for axis in range(d1):
        step = np.full([d1 - 1], -1, np.int32)
        if axis < d1 - 1:
            step[axis] = d1 - 1  # densecrf: n1 = key - 1 except key_j + d; n2 = -(that)
        pair = []
        for sign in (1, -1):
            code = codec.encode(groups, (remainders - sign) % d1, keys + sign * step)
            position = tf.searchsorted(sorted_codes, code)
            position = tf.minimum(position, tf.size(sorted_codes) - 1)
            found = tf.gather(sorted_codes, position) == code
            pair.append(tf.concat([[0], tf.where(found, tf.gather(order, position) + 1, 0)], axis=0))
        directions.append(tf.stack(pair))
    return tf.stack(directions)


def lattice_filter(lattice: Lattice, values):
    """Returns float32 [P, C]: values float32 [P, C] filtered through the lattice (splat, blur
    along the d+1 directions, slice), scaled by densecrf's 1 / (1 + 2^-d)."""
    num_rows = tf.shape(lattice.blur_neighbours)[-1]
    grid = tf.math.unsorted_segment_sum(
        values[:, None, :] * lattice.weights[:, :, None], lattice.offsets, num_rows
    )
    d = lattice.weights.shape[-1] - 1
    for axis in range(d + 1):
        before, after = lattice.blur_neighbours[axis, 0], lattice.blur_neighbours[axis, 1]
        grid = grid + 0.5 * (tf.gather(grid, before) + tf.gather(grid, after))
    alpha = np.float32(1.0) / (1.0 + np.float32(2.0) ** -d)
    sliced = tf.gather(grid, lattice.offsets) * (lattice.weights * alpha)[:, :, None]
    return tf.reduce_sum(sliced, axis=1)
