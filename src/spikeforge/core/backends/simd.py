"""Explicit SIMD building blocks for the packed RLS kernel (numba intrinsics written in LLVM IR).

A packed P row (the upper triangle of one row, :mod:`spikeforge.rls.p_matrix`) starts at an
arbitrary element and has any length, so the compiler's own vectorisation of a loop over it runs a
scalar remainder on almost every row (the packed kernel took three times as long as the dense one).
These intrinsics instead work on whole *column chunks* of LANES elements: chunk ``b`` of row ``q``
is columns ``LANES b .. LANES b + LANES - 1``, loaded in one vector from ``Pi[row_base[q] + LANES b]``
(``row_base[q]``: the packed position of the row's column 0), whatever the row's alignment.  Lanes
outside the row's columns ``q .. lmax - 1`` are masked: they contribute nothing and are written back
unchanged.  The caller guarantees that every vector lies inside the neuron's own packed block.

Column chunks keep the gain ``k`` aligned (one vector per chunk, whatever the row); the rows of a
chunk are added in order.  (Results do not depend on the number of threads because each neuron is
updated by one thread.)

The ``lanes_*`` intrinsics work on P *interleaved* by groups of LANES neurons
(:func:`spikeforge.core.backends.numba_rls.interleave`): a group's block is (S, LANES), row ``e`` holding
packed element ``e`` of each of the group's neurons, so that one vector operation does the same step
for LANES neurons and no lane is ever masked.  They add in the order of the intrinsics above, lane for
lane, so an interleaved update equals the packed one bit for bit (for finite input rates: where those
intrinsics add a masked zero times a rate, these skip the column; and but for the sign and payload of NaNs,
which depend on the order of an addition's operands, and LLVM may swap them).
"""

from __future__ import annotations

from functools import cache

from llvmlite import ir
from numba import types
from numba.core.errors import TypingError
from numba.extending import intrinsic

LANES = 16  # columns per chunk: one cache line of float32, two of float64
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _splat(builder, value):
    """A LANES-vector holding ``value`` in every lane."""
    vector_type = ir.VectorType(value.type, LANES)
    undefined = ir.Constant(vector_type, ir.Undefined)
    first = builder.insert_element(undefined, value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, undefined, ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _vector_at(builder, data, offset, vector_type):
    """Pointer to the LANES elements starting at ``data[offset]`` (any alignment)."""
    return builder.bitcast(builder.gep(data, [offset]), vector_type.as_pointer())


def _tree_sum(builder, vector):
    """The sum of a vector's lanes, as a fixed tree: halves added until one lane is left."""
    width = LANES
    while width > 1:
        width //= 2
        low = builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(_I32, width), list(range(width))))
        high = builder.shuffle_vector(vector, vector,
                                      ir.Constant(ir.VectorType(_I32, width), list(range(width, 2 * width))))
        vector = builder.fadd(low, high)
    return builder.extract_element(vector, ir.Constant(_I32, 0))


def _lane_window(builder, lane_numbers, first_column, end_column, chunk_column):
    """Lanes of the chunk at ``chunk_column`` whose column is in ``first_column .. end_column - 1``."""
    low = _splat(builder, builder.trunc(builder.sub(first_column, chunk_column), _I32))
    high = _splat(builder, builder.trunc(builder.sub(end_column, chunk_column), _I32))
    return builder.and_(builder.icmp_signed(">=", lane_numbers, low), builder.icmp_signed("<", lane_numbers, high))


class _ChunkLoop:
    """``for b in range(q // LANES, chunks)`` (or from ``first``), built in IR; ``phis``: loop-carried vectors, from
    ``initial``."""

    def __init__(self, builder, q, chunks, initial, first=None):
        self.builder, self.chunks = builder, chunks
        index_type = q.type
        first = builder.udiv(q, ir.Constant(index_type, LANES)) if first is None else first
        self.entry = builder.block
        self.head = builder.append_basic_block("chunks.head")
        self.body = builder.append_basic_block("chunks.body")
        self.done = builder.append_basic_block("chunks.done")
        builder.branch(self.head)
        builder.position_at_end(self.head)
        self.chunk = builder.phi(index_type)
        self.phis = [builder.phi(value.type) for value in initial]
        self.chunk.add_incoming(first, self.entry)
        for phi, value in zip(self.phis, initial):
            phi.add_incoming(value, self.entry)
        builder.cbranch(builder.icmp_unsigned("<", self.chunk, chunks), self.body, self.done)
        builder.position_at_end(self.body)
        self.column = builder.mul(self.chunk, ir.Constant(index_type, LANES))

    def close(self, updated):
        builder = self.builder
        body_end = builder.block
        self.chunk.add_incoming(builder.add(self.chunk, ir.Constant(self.chunk.type, 1)), body_end)
        for phi, value in zip(self.phis, updated):
            phi.add_incoming(value, body_end)
        builder.branch(self.head)
        builder.position_at_end(self.done)


def _index_loop(builder, first, last, body, initial=None):
    """``for m in range(first, last)`` (64-bit), built in IR: ``body(m, carried)`` emits one iteration and
    returns the next value of the one loop-carried value (from ``initial``; None: no such value).  Returns the
    carried value after the loop."""
    entry, head = builder.block, builder.append_basic_block("index.head")
    loop_body, done = builder.append_basic_block("index.body"), builder.append_basic_block("index.done")
    builder.branch(head)
    builder.position_at_end(head)
    m = builder.phi(_I64)
    m.add_incoming(first, entry)
    carried = None
    if initial is not None:
        carried = builder.phi(initial.type)
        carried.add_incoming(initial, entry)
    builder.cbranch(builder.icmp_signed("<", m, last), loop_body, done)
    builder.position_at_end(loop_body)
    updated = body(m, carried)
    m.add_incoming(builder.add(m, ir.Constant(_I64, 1)), builder.block)
    if initial is not None:
        carried.add_incoming(updated, builder.block)
    builder.branch(head)
    builder.position_at_end(done)
    return carried


def _require_arrays(values, index_array=None, ndim=1):
    """The intrinsics address elements from the data pointer in the first array's type: the value arrays
    must be C-contiguous (``ndim``-d: rows of LANES for the ``lanes_*`` ones) and of one floating type,
    ``index_array`` C-contiguous 64-bit integers."""
    for array in values:
        if not isinstance(array, types.Array) or array.layout != "C" or array.ndim != ndim:
            raise TypingError(f"{array} must be a {ndim}-d C-contiguous array (the SIMD chunks assume unit stride)")
    if index_array is not None and (not isinstance(index_array, types.Array) or index_array.layout != "C"
                                    or index_array.ndim != 1 or index_array.dtype not in (types.int64, types.uint64)):
        raise TypingError(f"{index_array} must be a 1-d C-contiguous array of 64-bit integers")
    if any(array.dtype != values[0].dtype for array in values) or not isinstance(values[0].dtype, types.Float):
        raise TypingError(f"the arrays {values} must have one floating type")


def _arrays(context, builder, signature, args, count):
    """Data pointers of the first ``count`` arguments (arrays)."""
    return [context.make_array(t)(context, builder, v).data for t, v in zip(signature.args[:count], args[:count])]


@cache
def gain_rows(rows: int):
    """Intrinsic ``gain(k, Pi, a, lower, row_base, q, lmax, chunks)`` for rows ``q .. q + rows - 1``:
    ``k[m] += a[r] P[r, m]`` for ``r <= m < lmax`` (the rows added in order), and
    ``lower[r] = sum_{r < m < lmax} P[r, m] a[m]`` (the row's part of ``k[r]`` right of the diagonal: the
    caller adds it to ``k`` once every row is done).  ``k``, ``a``: at least ``LANES * chunks`` long, ``a``
    zero past the inputs.  Several rows per call load and store each chunk of ``k`` once for all of them."""

    @intrinsic
    def gain(typingctx, k, Pi, a, lower, row_base, q, lmax, chunks):
        _require_arrays((Pi, k, a, lower), row_base)
        signature = types.void(k, Pi, a, lower, row_base, q, lmax, chunks)

        def codegen(context, builder, signature, args):
            k_data, p_data, a_data, lower_data, base_data = _arrays(context, builder, signature, args, 5)
            q_value, lmax_value, chunks_value = args[5:]
            vector_type = ir.VectorType(context.get_data_type(signature.args[1].dtype), LANES)
            zero = ir.Constant(vector_type, [0.0] * LANES)
            lane_numbers = ir.Constant(ir.VectorType(_I32, LANES), list(range(LANES)))
            row_numbers = [builder.add(q_value, ir.Constant(q_value.type, r)) for r in range(rows)]
            bases = [builder.load(builder.gep(base_data, [row])) for row in row_numbers]
            a_rows = [_splat(builder, builder.load(builder.gep(a_data, [row]))) for row in row_numbers]
            loop = _ChunkLoop(builder, q_value, chunks_value, [zero] * rows)
            k_at = _vector_at(builder, k_data, loop.column, vector_type)
            k_chunk = builder.load(k_at, align=4)
            a_chunk = builder.load(_vector_at(builder, a_data, loop.column, vector_type), align=4)
            sums = []
            for r in range(rows):
                p = builder.load(_vector_at(builder, p_data, builder.add(bases[r], loop.column), vector_type), align=4)
                from_diagonal = _lane_window(builder, lane_numbers, row_numbers[r], lmax_value, loop.column)
                right_of_it = _lane_window(builder, lane_numbers, builder.add(row_numbers[r], ir.Constant(
                    q_value.type, 1)), lmax_value, loop.column)
                k_chunk = builder.fadd(k_chunk, builder.fmul(a_rows[r], builder.select(from_diagonal, p, zero)))
                sums.append(builder.fadd(loop.phis[r], builder.fmul(builder.select(right_of_it, p, zero), a_chunk)))
            builder.store(k_chunk, k_at, align=4)
            loop.close(sums)
            for r in range(rows):
                builder.store(_tree_sum(builder, loop.phis[r]), builder.gep(lower_data, [row_numbers[r]]))
            return context.get_dummy_value()

        return signature, codegen

    return gain


@intrinsic
def update_row(typingctx, Pi, row_base, q, lmax, chunks, c, k_q, k):
    """``P[q, m] -= c (k_q k[m])`` for ``q <= m < lmax`` (P[q, m] at ``Pi[row_base + m]``); the other lanes
    of each chunk are written back unchanged.  The product ``k_q k[m]`` is the same number for (q, m) and
    (m, q), as in the dense kernel."""
    _require_arrays((Pi, k))
    signature = types.void(Pi, row_base, q, lmax, chunks, Pi.dtype, Pi.dtype, k)

    def codegen(context, builder, signature, args):
        p_value, base_value, q_value, lmax_value, chunks_value, c_value, k_q_value, k_value = args
        p_data = context.make_array(signature.args[0])(context, builder, p_value).data
        k_data = context.make_array(signature.args[7])(context, builder, k_value).data
        vector_type = ir.VectorType(context.get_data_type(signature.args[0].dtype), LANES)
        lane_numbers = ir.Constant(ir.VectorType(_I32, LANES), list(range(LANES)))
        c_all, k_q_all = _splat(builder, c_value), _splat(builder, k_q_value)
        loop = _ChunkLoop(builder, q_value, chunks_value, [])
        p_at = _vector_at(builder, p_data, builder.add(base_value, loop.column), vector_type)
        p = builder.load(p_at, align=4)
        k_chunk = builder.load(_vector_at(builder, k_data, loop.column, vector_type), align=4)
        updated = builder.fsub(p, builder.fmul(c_all, builder.fmul(k_q_all, k_chunk)))
        in_row = _lane_window(builder, lane_numbers, q_value, lmax_value, loop.column)
        builder.store(builder.select(in_row, updated, p), p_at, align=4)
        loop.close([])
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def prefetch(typingctx, values, offset):
    """Ask the CPU to bring the cache line holding ``values[offset]`` into its L2 cache (a read prefetch,
    ``llvm.prefetch`` with locality 2); no effect on results, and none on an address outside the array."""
    _require_arrays((values,))
    if not isinstance(offset, types.Integer):
        raise TypingError(f"the prefetch offset must be an integer, not {offset}")
    signature = types.void(values, offset)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        # the intrinsic's name carries the pointer type: p0 with opaque pointers (LLVM 15+), p0i8 before
        name = "llvm.prefetch.p0" if str(address.type) == "ptr" else "llvm.prefetch.p0i8"
        function = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(ir.VoidType(), [address.type, _I32, _I32, _I32]), name=name)
        read, locality, data_cache = (ir.Constant(_I32, value) for value in (0, 2, 1))
        builder.call(function, [address, read, locality, data_cache])
        return context.get_dummy_value()

    return signature, codegen


def _lane_row(builder, data, row, vector_type):
    """Pointer to row ``row`` (64-bit) of a C-contiguous (rows, LANES) array: one vector."""
    return _vector_at(builder, data, builder.mul(row, ir.Constant(row.type, LANES)), vector_type)


def _as_int64(builder, value):
    return builder.sext(value, _I64) if value.type.width < 64 else value


@intrinsic
def lanes_gain_row(typingctx, block, k, a, lower, row_base, q, lmax, chunks):
    """Row ``q`` of an interleaved group's triangles (``block``: (S, LANES), element (q, m) of every neuron at
    row ``row_base + m``), LANES neurons at once: ``k[m] += a[q] P[q, m]`` for ``q <= m < lmax``, and
    ``lower[q]`` = the sum of ``P[q, m] a[m]`` over ``q < m < lmax``, in :func:`gain_rows`' order (one partial sum
    per column modulo LANES, over the column chunks in order, then the same tree).  The partial sums stay in
    registers.  ``k``, ``a``: (>= LANES * chunks, LANES); ``lower``: (>= lmax, LANES).

    The chunks between the diagonal's and a last partial one are whole and run straight through.  In those two,
    each column outside the row is skipped by a branch (the tail's branches are the same on every row, so they
    are predicted): masked, as in :func:`gain_rows`, they made 42 % more columns than the rows have at 58
    inputs.  Skipping a column adds nothing where the mask added zero, so the sums are the same for finite input
    rates ``a``.  Never reads past the row, so any ``row_base`` of the block is safe."""
    _require_arrays((block, k, a, lower), ndim=2)
    signature = types.void(block, k, a, lower, row_base, q, lmax, chunks)

    def codegen(context, builder, signature, args):
        block_data, k_data, a_data, lower_data = _arrays(context, builder, signature, args, 4)
        base, q_value, lmax_value, chunks_value = (_as_int64(builder, value) for value in args[4:])
        vector_type = ir.VectorType(context.get_data_type(signature.args[0].dtype), LANES)
        zero = ir.Constant(vector_type, [0.0] * LANES)
        a_q = builder.load(_lane_row(builder, a_data, q_value, vector_type), align=4)

        def add_to_k(m):
            """k[m] += a_q P[q, m]; returns P[q, m]."""
            p = builder.load(_lane_row(builder, block_data, builder.add(base, m), vector_type), align=4)
            k_at = _lane_row(builder, k_data, m, vector_type)
            builder.store(builder.fadd(builder.load(k_at, align=4), builder.fmul(a_q, p)), k_at, align=4)
            return p

        def column(m, total):
            p = add_to_k(m)
            a_m = builder.load(_lane_row(builder, a_data, m, vector_type), align=4)
            return builder.fadd(total, builder.fmul(p, a_m))

        def chunk(column0, sums, first_column=None):
            """Columns ``column0 .. column0 + LANES - 1`` (with ``first_column``: only those in ``first_column ..
            lmax - 1``, each behind a branch)."""
            if first_column is None:
                return [column(builder.add(column0, ir.Constant(_I64, lane)), sums[lane]) for lane in range(LANES)]
            updated = []
            for lane in range(LANES):
                m = builder.add(column0, ir.Constant(_I64, lane))
                inside = builder.and_(builder.icmp_signed(">=", m, first_column),
                                      builder.icmp_signed("<", m, lmax_value))
                before = builder.block
                with builder.if_then(inside):
                    value = column(m, sums[lane])
                    inside_end = builder.block
                phi = builder.phi(vector_type)
                phi.add_incoming(sums[lane], before)
                phi.add_incoming(value, inside_end)
                updated.append(phi)
            return updated

        add_to_k(q_value)  # the diagonal: k only
        lanes = ir.Constant(_I64, LANES)
        first = builder.udiv(q_value, lanes)
        whole_end = builder.udiv(lmax_value, lanes)
        sums = chunk(builder.mul(first, lanes), [zero] * LANES, builder.add(q_value, ir.Constant(_I64, 1)))
        loop = _ChunkLoop(builder, q_value, whole_end, sums, first=builder.add(first, ir.Constant(_I64, 1)))
        loop.close(chunk(loop.column, loop.phis))
        sums = list(loop.phis)
        before = builder.block
        with builder.if_then(builder.and_(builder.icmp_signed(">", whole_end, first),
                                          builder.icmp_signed("<", whole_end, chunks_value))):
            last_sums = chunk(builder.mul(whole_end, lanes), sums, ir.Constant(_I64, 0))
            last_block = builder.block
        merged = []
        for value, last in zip(sums, last_sums):
            phi = builder.phi(vector_type)
            phi.add_incoming(value, before)
            phi.add_incoming(last, last_block)
            merged.append(phi)
        partial = merged
        width = LANES
        while width > 1:
            width //= 2
            for lane in range(width):
                partial[lane] = builder.fadd(partial[lane], partial[lane + width])
        builder.store(partial[0], _lane_row(builder, lower_data, q_value, vector_type), align=4)
        return context.get_dummy_value()

    return signature, codegen


@cache
def lanes_update_rows(rows: int):
    """Intrinsic ``update(block, k, c, row_base, q, lmax)``: ``P[r, m] -= c (k[r] k[m])`` for the rows
    ``q <= r < q + rows`` (``q + rows <= lmax``) and ``r <= m < lmax``, LANES neurons at once (``block``,
    ``row_base``: see :func:`lanes_gain_row`; ``c``: (1, LANES), each neuron's factor).  Several rows per call
    load each ``k[m]`` once for all of them (two rows: 2-4 % less time per update, BENCHMARKS.md).  Every element
    is updated once, by the same operations whatever ``rows``, so the result does not depend on it."""

    @intrinsic
    def update(typingctx, block, k, c, row_base, q, lmax):
        _require_arrays((block, k, c), ndim=2)
        signature = types.void(block, k, c, row_base, q, lmax)

        def codegen(context, builder, signature, args):
            block_data, k_data, c_data, base_data = _arrays(context, builder, signature, args, 4)
            q_value, lmax_value = (_as_int64(builder, value) for value in args[4:])
            vector_type = ir.VectorType(context.get_data_type(signature.args[0].dtype), LANES)
            c_all = builder.load(_lane_row(builder, c_data, ir.Constant(_I64, 0), vector_type), align=4)
            row_numbers = [builder.add(q_value, ir.Constant(_I64, r)) for r in range(rows)]
            bases = [_as_int64(builder, builder.load(builder.gep(base_data, [row]))) for row in row_numbers]
            k_rows = [builder.load(_lane_row(builder, k_data, row, vector_type), align=4) for row in row_numbers]

            def element(r, m, k_m):
                p_at = _lane_row(builder, block_data, builder.add(bases[r], m), vector_type)
                product = builder.fmul(c_all, builder.fmul(k_rows[r], k_m))
                builder.store(builder.fsub(builder.load(p_at, align=4), product), p_at, align=4)

            for r in range(rows - 1):  # the corner left of the last row's diagonal
                for column in range(r, rows - 1):
                    element(r, row_numbers[column], k_rows[column])

            def column(m, _):
                k_m = builder.load(_lane_row(builder, k_data, m, vector_type), align=4)
                for r in range(rows):
                    element(r, m, k_m)

            _index_loop(builder, row_numbers[-1], lmax_value, column)
            return context.get_dummy_value()

        return signature, codegen

    return update


@intrinsic
def lanes_scalars(typingctx, k, a, lower, den, c, count, lmax, inv_scale, p_scale):
    """The scalars of an interleaved group, LANES neurons at once, in the order of the packed kernel's: for rows
    ``m < count`` ``k[m] = (k[m] + lower[m]) inv_scale`` (the part right of the diagonal added, then the scale
    ``inv_scale`` = 1/p_scale in P's type), for ``count <= m < lmax`` ``k[m] = k[m] inv_scale``; ``den`` (float64,
    LANES) = 1 / (1 + a'k), the sum in float64, row after row; ``c[0]`` = den p_scale rounded to P's type.
    ``k``, ``a``, ``lower``, ``c``: (rows, LANES) in P's type.  (Written as plain loops, these took a seventh of an
    update: LLVM kept ``den`` in memory and did not vectorise.)"""
    _require_arrays((k, a, lower, c), ndim=2)
    if not isinstance(den, types.Array) or den.layout != "C" or den.ndim != 1 or den.dtype != types.float64:
        raise TypingError(f"{den} must be a 1-d C-contiguous float64 array")
    signature = types.void(k, a, lower, den, c, count, lmax, k.dtype, types.float64)

    def codegen(context, builder, signature, args):
        k_data, a_data, lower_data, den_data, c_data = _arrays(context, builder, signature, args, 5)
        count_value, lmax_value = (_as_int64(builder, value) for value in args[5:7])
        inv_scale_value, p_scale_value = args[7:]
        vector_type = ir.VectorType(context.get_data_type(signature.args[0].dtype), LANES)
        wide_type = ir.VectorType(ir.DoubleType(), LANES)
        inv_all = _splat(builder, inv_scale_value)

        def widened(value):
            return value if vector_type == wide_type else builder.fpext(value, wide_type)

        def with_lower(m, total):
            k_at = _lane_row(builder, k_data, m, vector_type)
            lower_row = builder.load(_lane_row(builder, lower_data, m, vector_type), align=4)
            k_m = builder.fmul(builder.fadd(builder.load(k_at, align=4), lower_row), inv_all)
            builder.store(k_m, k_at, align=4)
            a_m = builder.load(_lane_row(builder, a_data, m, vector_type), align=4)
            return builder.fadd(total, builder.fmul(widened(a_m), widened(k_m)))

        def scaled(m, _):
            k_at = _lane_row(builder, k_data, m, vector_type)
            builder.store(builder.fmul(builder.load(k_at, align=4), inv_all), k_at, align=4)

        a_k = _index_loop(builder, ir.Constant(_I64, 0), count_value, with_lower, ir.Constant(wide_type, [0.0] * LANES))
        _index_loop(builder, count_value, lmax_value, scaled)
        den_value = builder.fdiv(ir.Constant(wide_type, [1.0] * LANES),
                                 builder.fadd(ir.Constant(wide_type, [1.0] * LANES), a_k))
        builder.store(den_value, builder.bitcast(den_data, wide_type.as_pointer()), align=8)
        c_value = builder.fmul(den_value, _splat(builder, p_scale_value))
        if vector_type != wide_type:
            c_value = builder.fptrunc(c_value, vector_type)
        builder.store(c_value, _lane_row(builder, c_data, ir.Constant(_I64, 0), vector_type), align=4)
        return context.get_dummy_value()

    return signature, codegen
