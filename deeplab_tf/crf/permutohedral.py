"""The permutohedral lattice of Adams, Baek & Davis (2010) in standard TensorFlow ops.

`build_lattice` places every point of a feature set in the lattice exactly as Krähenbühl's
densecrf (`permutohedral.cpp`, the code behind pydensecrf) does, in the same float32 arithmetic:
the same elevation into d+1 dimensions, rounding to the nearest remainder-0 point (ties to
even, as its SSE path), ranking, barycentric weights and simplex vertex keys. Where densecrf uses
a hash table, this module packs integer keys into one int64 each (mixed radix over the observed
key ranges), finds the distinct simplices and then the distinct vertices with `tf.unique`, and
looks blur neighbours up with `tf.searchsorted` on the sorted vertex keys, so the lattice is
rebuilt per call inside any graph (tf.function, SavedModel, TF Serving) for any image size.

`lattice_filter` is densecrf's `Permutohedral::compute` as sparse matrix products (the lattice
is fixed across mean-field iterations, so splat, blur and slice are stored as
`tf.SparseTensor`s once): splat with the barycentric weights, blur with the [1/2, 1, 1/2]
kernel along each of the d+1 lattice directions in turn (missing neighbours count as zero),
slice back with the same weights times densecrf's constant 1 / (1 + 2^-d). The result
approximates sum_j exp(-|f_i - f_j|^2 / 2) v_j (self term included) up to a constant.
"""

import collections

import numpy as np
import tensorflow as tf

Lattice = collections.namedtuple("Lattice", ["splat", "slice", "blur"])
Lattice.__doc__ = """A lattice of M vertices built over P points of a d-dimensional feature set.

splat: float32 tf.SparseTensor [M, P]. Barycentric weight of each point's d+1 enclosing simplex
    vertices (each column sums to 1), times any per-point scale folded in by `rescale`.
slice: float32 tf.SparseTensor [M, P]. The same entries times densecrf's 1 / (1 + 2^-d) and
    any per-point output scale; applied transposed.
blur: tuple of d+1 float32 tf.SparseTensor [M, M]. Per lattice direction, 1 on the diagonal and
    1/2 for each of a vertex's two neighbours that exist in the lattice.
"""

MAX_KEY_BITS = 62
"""Packed lattice keys must fit in this many bits (int64 with headroom)."""


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
    excess = tf.cast(tf.reduce_sum(rounded, axis=-1, keepdims=True), tf.int32)
    # densecrf's pairwise ranking (rank_i += [diff_i < diff_j] for i < j, else rank_j += 1) is
    # the position in a descending sort that keeps ties in index order, as top_k does.
    order = tf.math.top_k(elevated - rem0, k=d1).indices
    shifted = tf.argsort(order, axis=-1, stable=True) + excess
    rank = tf.math.floormod(shifted, d1)  # densecrf wraps rank + excess into 0..d, moving rem0
    rem0 = rem0 + tf.cast(rank - shifted, tf.float32)
    share = (elevated - rem0) * down
    # Vertex p gets +share of the coordinate ranked d-p and -share of the one ranked d-p+1.
    coordinate = tf.gather(order, tf.math.floormod(d1 - 1 - np.arange(d1) - excess, d1), batch_dims=1)
    ranked = tf.gather(share, coordinate, batch_dims=1)
    first = ranked[:, :1] + (1.0 - ranked[:, -1:])
    weights = tf.concat([first, ranked[:, 1:] - ranked[:, :-1]], axis=-1)
    return tf.cast(rem0, tf.int32), rank, weights


class _Packer:
    """Packs rows of int32 columns [..., k] into int64 codes, mixed radix over the ranges seen when
    built widened by `margin` on each side: rows within `margin` of the seen ones encode
    injectively, and moving one column by n moves the code by n * strides[column]."""

    def __init__(self, columns, margin: int):
        columns = tf.reshape(columns, [-1, columns.shape[-1]])
        self.low = tf.reduce_min(columns, axis=0) - margin
        self.span = tf.cast(tf.reduce_max(columns, axis=0) - self.low + 1 + margin, tf.int64)
        self.strides = tf.math.cumprod(self.span, exclusive=True, reverse=True)
        bits = tf.reduce_sum(tf.math.log(tf.cast(self.span, tf.float64))) / np.log(2.0)
        self.check = tf.debugging.assert_less(
            bits,
            tf.constant(float(MAX_KEY_BITS), tf.float64),
            message="permutohedral lattice keys do not fit in int64: a sigma is too small for this image",
        )

    def encode(self, columns):
        """Returns int64 codes [...] of int32 rows [..., k]."""
        with tf.control_dependencies([self.check]):
            return tf.reduce_sum(tf.cast(columns - self.low, tf.int64) * self.strides, axis=-1)

    def decode(self, codes, column=None):
        """Returns the int32 rows [M, k] of int64 codes [M], or only `column` [M]."""
        if column is not None:
            return tf.cast(codes // self.strides[column] % self.span[column], tf.int32) + self.low[column]
        return tf.cast(codes[:, None] // self.strides % self.span, tf.int32) + self.low


def build_lattice(features, groups=None) -> Lattice:
    """Returns the `Lattice` of float32 features [P, d] (d static).

    `groups` (int32 [P], default all 0) keeps points of different groups (e.g. the images of a
    batch) in disjoint lattices, as if each group were built alone.
    """
    d = features.shape[-1]
    d1 = d + 1
    num_points = tf.shape(features)[0]
    groups = tf.zeros([num_points], tf.int32) if groups is None else groups
    rem0, rank, weights = _simplex(_elevate(features))
    # Points in one simplex share its vertices: derive vertices once per distinct simplex.
    simplex = tf.concat([groups[:, None], rank[:, :d], rem0[:, :d] // d1], axis=-1)
    simplex_packer = _Packer(simplex, margin=0)
    simplices, simplex_index = tf.unique(simplex_packer.encode(simplex), out_idx=tf.int32)
    simplex = simplex_packer.decode(simplices)
    group, rank, base = simplex[:, None, :1], simplex[:, None, 1 : d + 1], simplex[:, None, d + 1 :]
    remainder = np.arange(d1, dtype=np.int32)[:, None]  # vertex r of a simplex, [d+1, 1]
    # densecrf's canonical simplex: key_i = rem0_i + r - (d+1) [rank_i > d - r], all = r mod d+1.
    quotient = base - tf.cast(rank > d - remainder, tf.int32)
    columns = tf.concat([tf.shape(quotient)[:2], [1]], axis=0)
    vertex = tf.concat([tf.broadcast_to(group, columns), tf.broadcast_to(remainder, columns), quotient], axis=-1)
    packer = _Packer(vertex, margin=1)
    vertices, vertex_index = tf.unique(tf.reshape(packer.encode(vertex), [-1]), out_idx=tf.int32)
    point_vertices = tf.gather(tf.reshape(vertex_index, [-1, d1]), simplex_index)  # [P, d+1]
    entries = tf.stack([tf.reshape(point_vertices, [-1]), tf.repeat(tf.range(num_points), d1)], axis=-1)
    shape = tf.cast(tf.stack([tf.size(vertices), num_points]), tf.int64)
    splat = tf.SparseTensor(tf.cast(entries, tf.int64), tf.reshape(weights, [-1]), shape)
    alpha = np.float32(1.0) / (1.0 + np.float32(2.0) ** -d)
    return Lattice(splat, splat.with_values(splat.values * alpha), _blur_matrices(packer, vertices, d1))


def _blur_matrices(packer, vertices, d1) -> tuple:
    """Returns d+1 SparseTensors [M, M]: per direction, identity plus 1/2 at each neighbour."""
    # densecrf: along direction j, n1 = key - 1 except key_j + d, and n2 = key + 1 except key_j - d.
    # In packed (group, r, quotients (key - r) / (d+1)) form both are fixed code offsets: n1 has
    # remainder r - 1 and quotients -[r == 0] except +1 at j; n2 has r + 1, +[r == d], -1 at j.
    remainder = packer.decode(vertices, column=1)
    wraps_down = tf.cast(tf.equal(remainder, 0), tf.int64)[:, None]
    wraps_up = tf.cast(tf.equal(remainder, d1 - 1), tf.int64)[:, None]
    stride, quotient_strides = packer.strides[1], packer.strides[2:]
    total = tf.reduce_sum(quotient_strides)
    along = tf.concat([quotient_strides, [0]], axis=0)[None, :]  # direction d moves no stored key
    before = vertices[:, None] + (d1 * wraps_down - 1) * stride - wraps_down * total + along
    after = vertices[:, None] + (1 - d1 * wraps_up) * stride + wraps_up * total - along
    code = tf.stack([before, after], axis=-1)  # [M, d+1, 2]
    order = tf.argsort(vertices)
    sorted_codes = tf.gather(vertices, order)
    position = tf.searchsorted(sorted_codes, tf.reshape(code, [-1]), out_type=tf.int32)
    position = tf.minimum(position, tf.size(vertices) - 1)
    found = tf.reshape(tf.equal(tf.gather(sorted_codes, position), tf.reshape(code, [-1])), tf.shape(code))
    index = tf.reshape(tf.gather(order, position), tf.shape(code))
    rows = tf.broadcast_to(tf.range(tf.size(vertices))[:, None], tf.shape(code)[::2])
    size = tf.cast(tf.stack([tf.size(vertices), tf.size(vertices)]), tf.int64)
    matrices = []
    for axis in range(d1):
        keep = found[:, axis]
        row = tf.concat([rows[:, 0], tf.boolean_mask(rows, keep)], axis=0)
        column = tf.concat([rows[:, 0], tf.boolean_mask(index[:, axis], keep)], axis=0)
        halves = tf.fill(tf.shape(row)[:1] - tf.shape(rows)[:1], 0.5)
        value = tf.concat([tf.ones_like(rows[:, 0], tf.float32), halves], axis=0)
        matrices.append(tf.SparseTensor(tf.cast(tf.stack([row, column], axis=-1), tf.int64), value, size))
    return tuple(matrices)


def rescale(lattice: Lattice, before, after) -> Lattice:
    """Returns `lattice` whose filter scales its input by float32 before [P] and its output by
    after [P] per point (folded into the splat and slice weights)."""
    points = lattice.splat.indices[:, 1]
    return lattice._replace(
        splat=lattice.splat.with_values(lattice.splat.values * tf.gather(before, points)),
        slice=lattice.slice.with_values(lattice.slice.values * tf.gather(after, points)),
    )


def lattice_filter(lattice: Lattice, values):
    """Returns float32 [P, C]: values float32 [P, C] filtered through the lattice (splat, blur
    along the d+1 directions in order, slice)."""
    grid = tf.sparse.sparse_dense_matmul(lattice.splat, values)
    for blur in lattice.blur:
        grid = tf.sparse.sparse_dense_matmul(blur, grid)
    return tf.sparse.sparse_dense_matmul(lattice.slice, grid, adjoint_a=True)
