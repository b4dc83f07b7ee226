// Element-wise ops, forward and backward (the CPU twins: ops/unary.rs, ops/binary.rs, ops/reduce.rs).

// Unary op codes (y = f(x); the backward gives dx from dy, x and y):
//  0 exp         y = eˣ                        dx = dy · y
//  1 log         y = ln x                      dx = dy / x
//  2 tanh        y = tanh x                    dx = dy · (1 − y²)
//  3 sigmoid     y = 1 / (1 + e⁻ˣ)             dx = dy · y (1 − y)
//  4 relu        y = max(x, 0)                 dx = dy · [x > 0]
//  5 gelu        y = x Φ(x), Φ(x) = ½(1 + erf(x/√2))   dx = dy · (Φ(x) + x φ(x)), φ(x) = e^{−x²/2}/√(2π)
//  6 sqrt        y = √x                        dx = dy · ½ / y
//  7 square      y = x²                        dx = dy · 2x
//  8 scale       y = a x                       dx = dy · a
//  9 add_scalar  y = x + a                     dx = dy
// 10 neg         y = −x                        dx = −dy
__device__ float unary_f(int op, float x, float a) {
    switch (op) {
    case 0: return expf(x);
    case 1: return logf(x);
    case 2: return tanhf(x);
    case 3: return sigmoidf(x);
    case 4: return fmaxf(x, 0.0f);
    case 5: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case 6: return sqrtf(x);
    case 7: return x * x;
    case 8: return a * x;
    case 9: return x + a;
    default: return -x;
    }
}

__device__ float unary_df(int op, float x, float y, float a) {
    switch (op) {
    case 0: return y;
    case 1: return 1.0f / x;
    case 2: return 1.0f - y * y;
    case 3: return y * (1.0f - y);
    case 4: return x > 0.0f ? 1.0f : 0.0f;
    case 5: {
        const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        const float pdf = expf(-0.5f * x * x) * 0.3989422804014327f;
        return cdf + x * pdf;
    }
    case 6: return 0.5f / y;
    case 7: return 2.0f * x;
    case 8: return a;
    case 9: return 1.0f;
    default: return -1.0f;
    }
}

// y[i] = f(x[i]), i < n.
extern "C" __global__ void unary_forward(const float* x, float* y, long long n, int op, float a) {
    FOR_EACH(i, n) y[i] = unary_f(op, x[i], a);
}

// dx[i] = dy[i] · f'(x[i]) (written through y where the derivative is a function of the output).
extern "C" __global__ void unary_backward(const float* x, const float* y, const float* dy, float* dx,
                                          long long n, int op, float a) {
    FOR_EACH(i, n) dx[i] = dy[i] * unary_df(op, x[i], y[i], a);
}

// Broadcast layout `meta` (ints): [out dims (rank) | a strides (rank) | b strides (rank)], a stride
// of 0 on every axis an operand is broadcast along. Output element i (row-major over the out dims)
// reads a[ia], b[ib].
__device__ void broadcast_offsets(long long i, const long long* meta, int rank, long long* ia,
                                  long long* ib) {
    long long oa = 0, ob = 0;
    for (int ax = rank - 1; ax >= 0; --ax) {
        const long long dim = meta[ax];
        const long long c = i % dim;
        i /= dim;
        oa += c * meta[rank + ax];
        ob += c * meta[2 * rank + ax];
    }
    *ia = oa;
    *ib = ob;
}

// Binary op codes, y = a ∘ b with broadcasting:
//  0 add          y = a + b       da = dy          db = dy
//  1 sub          y = a − b       da = dy          db = −dy
//  2 mul          y = a b         da = dy b        db = dy a
//  3 div          y = a / b       da = dy / b      db = −dy a / b²
//  4 masked_fill  y = b ≠ 0 ? v : a   (b is the mask)   da = b ≠ 0 ? 0 : dy   (no db)
__device__ float binary_f(int op, float a, float b, float v) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    default: return b != 0.0f ? v : a;
    }
}

// y[i] = a[ia] ∘ b[ib] over the n output elements.
extern "C" __global__ void binary_forward(const float* a, const float* b, float* y,
                                          const long long* meta, int rank, long long n, int op,
                                          float v) {
    FOR_EACH(i, n) {
        long long ia, ib;
        broadcast_offsets(i, meta, rank, &ia, &ib);
        y[i] = binary_f(op, a[ia], b[ib], v);
    }
}

// da[ia] += ∂y/∂a · dy[i], db[ib] += ∂y/∂b · dy[i] (atomic: a broadcast operand collects the sum over
// the axes it was repeated along). da and db must be zeroed by the caller; masked_fill leaves db 0.
extern "C" __global__ void binary_backward(const float* a, const float* b, const float* dy, float* da,
                                           float* db, const long long* meta, int rank, long long n,
                                           int op) {
    FOR_EACH(i, n) {
        long long ia, ib;
        broadcast_offsets(i, meta, rank, &ia, &ib);
        const float g = dy[i];
        float ga, gb;
        switch (op) {
        case 0: ga = g; gb = g; break;
        case 1: ga = g; gb = -g; break;
        case 2: ga = g * b[ib]; gb = g * a[ia]; break;
        case 3: ga = g / b[ib]; gb = -g * a[ia] / (b[ib] * b[ib]); break;
        default: ga = b[ib] != 0.0f ? 0.0f : g; gb = 0.0f; break;
        }
        atomicAdd(&da[ia], ga);
        if (op != 4) atomicAdd(&db[ib], gb);
    }
}

// y[o, i] = Σ_k x[o, k, i] for x viewed as [outer, len, inner] (sum over one axis), times `scale`
// (1 for a sum, 1/len for a mean).
extern "C" __global__ void reduce_axis_forward(const float* x, float* y, long long outer, long long len,
                                               long long inner, float scale) {
    FOR_EACH(e, outer * inner) {
        const long long o = e / inner, i = e % inner;
        float s = 0.0f;
        for (long long k = 0; k < len; ++k) s += x[(o * len + k) * inner + i];
        y[e] = s * scale;
    }
}

// dx[o, k, i] = scale · dy[o, i].
extern "C" __global__ void reduce_axis_backward(const float* dy, float* dx, long long outer, long long len,
                                                long long inner, float scale) {
    FOR_EACH(e, outer * len * inner) {
        const long long i = e % inner, o = e / (len * inner);
        dx[e] = scale * dy[o * inner + i];
    }
}
