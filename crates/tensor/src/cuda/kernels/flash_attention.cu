// Fused scaled-dot-product attention, flash-style (the CPU twin: ops/flash_attention.rs; Dao et al.
// 2022 FlashAttention, backward after FlashAttention-2, Dao 2023).
//
// O = softmax(Q Kᵀ · scale + mask) V for Q [B, H, T, D], K, V [B, H, S, D]; the T × S score matrix is
// never stored: memory is O(T·D) plus the log-sum-exp L [B·H·T].
// Visibility of key j to query i of batch row b: j < valid[b] (key padding) and, when causal, j ≤ i
// (top-left aligned, as PyTorch's is_causal). A query that sees no key gets O = 0, L = +∞ and zero
// gradients.
//
// Forward: one thread per query row i, FA_BR queries per block; tiles of FA_BC keys and values are
// staged in shared memory. Per tile: s_j = q·k_j · scale, m' = max(m, max_j s_j),
//   l ← l e^{m − m'} + Σ_j e^{s_j − m'},  o ← o e^{m − m'} + Σ_j e^{s_j − m'} v_j,  m ← m';
// at the end O = o / l, L = m + ln l.
// Backward: Δ_i = Σ dO_i ⊙ O_i; P_ij = e^{s_ij − L_i} is recomputed from L, dP_ij = dO_i · v_j,
// dS_ij = P_ij (dP_ij − Δ_i) · scale;  dQ_i = Σ_j dS_ij k_j  (one thread per query, tiles of K, V),
// dK_j = Σ_i dS_ij q_i, dV_j = Σ_i P_ij dO_i  (one thread per key, tiles of Q, dO, L, Δ): no atomics.
// Head sizes D ∈ {16, 32, 64, 128} are compiled (D is a template constant so the rows live in registers).

#define FA_BR 64
#define FA_BC 32

__device__ __forceinline__ int key_limit(int i, int valid, int causal) {
    return causal ? min(valid, i + 1) : valid;
}

template <int D>
__device__ void flash_forward(const float* __restrict__ q, const float* __restrict__ k,
                              const float* __restrict__ v, float* __restrict__ o,
                              float* __restrict__ lse, const int* __restrict__ valid, int H, int T,
                              int S, int causal, float scale) {
    __shared__ float ks[FA_BC * D];
    __shared__ float vs[FA_BC * D];
    const long long bh = blockIdx.y;
    const int b = bh / H;
    const int q0 = blockIdx.x * FA_BR;
    const int i = q0 + threadIdx.x;
    const int kv = valid[b];
    // Keys any query of the block sees (uniform over the block: every thread reaches the barriers).
    const int block_end = causal ? min(kv, q0 + FA_BR) : kv;
    const int my_end = i < T ? key_limit(i, kv, causal) : 0;
    const float* kh = k + bh * S * D;
    const float* vh = v + bh * S * D;
    float qr[D], acc[D];
    if (i < T) {
        const float* qi = q + (bh * T + i) * D;
#pragma unroll
        for (int c = 0; c < D; ++c) qr[c] = qi[c] * scale;
    }
#pragma unroll
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
    float m = -ATTEND_INF, l = 0.0f;
    for (int j0 = 0; j0 < block_end; j0 += FA_BC) {
        __syncthreads();
        for (int e = threadIdx.x; e < FA_BC * D; e += blockDim.x) {
            const int j = j0 + e / D;
            ks[e] = j < S ? kh[(long long)j * D + e % D] : 0.0f;
            vs[e] = j < S ? vh[(long long)j * D + e % D] : 0.0f;
        }
        __syncthreads();
        const int jn = min(FA_BC, my_end - j0);
        if (jn <= 0) continue;
        float s[FA_BC];
        float tmax = -ATTEND_INF;
#pragma unroll
        for (int jj = 0; jj < FA_BC; ++jj) {
            float dot = -ATTEND_INF;
            if (jj < jn) {
                dot = 0.0f;
#pragma unroll
                for (int c = 0; c < D; ++c) dot += qr[c] * ks[jj * D + c];
            }
            s[jj] = dot;
            tmax = fmaxf(tmax, dot);
        }
        const float mn = fmaxf(m, tmax);
        const float corr = expf(m - mn);
        l *= corr;
#pragma unroll
        for (int c = 0; c < D; ++c) acc[c] *= corr;
#pragma unroll
        for (int jj = 0; jj < FA_BC; ++jj) {
            if (jj < jn) {
                const float p = expf(s[jj] - mn);
                l += p;
#pragma unroll
                for (int c = 0; c < D; ++c) acc[c] += p * vs[jj * D + c];
            }
        }
        m = mn;
    }
    if (i < T) {
        float* oi = o + (bh * T + i) * D;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int c = 0; c < D; ++c) oi[c] = acc[c] * inv;
        lse[bh * T + i] = l > 0.0f ? m + logf(l) : ATTEND_INF;
    }
}

// dQ: one thread per query row (same tiling as the forward).
template <int D>
__device__ void flash_backward_dq(const float* __restrict__ q, const float* __restrict__ k,
                                  const float* __restrict__ v, const float* __restrict__ dout,
                                  const float* __restrict__ lse, const float* __restrict__ delta,
                                  float* __restrict__ dq, const int* __restrict__ valid, int H, int T,
                                  int S, int causal, float scale) {
    __shared__ float ks[FA_BC * D];
    __shared__ float vs[FA_BC * D];
    const long long bh = blockIdx.y;
    const int b = bh / H;
    const int q0 = blockIdx.x * FA_BR;
    const int i = q0 + threadIdx.x;
    const int kv = valid[b];
    const int block_end = causal ? min(kv, q0 + FA_BR) : kv;
    const int my_end = i < T ? key_limit(i, kv, causal) : 0;
    const float* kh = k + bh * S * D;
    const float* vh = v + bh * S * D;
    float qr[D], gr[D], acc[D];
    float li = 0.0f, di = 0.0f;
    if (i < T) {
        const float* qi = q + (bh * T + i) * D;
        const float* gi = dout + (bh * T + i) * D;
#pragma unroll
        for (int c = 0; c < D; ++c) {
            qr[c] = qi[c] * scale;
            gr[c] = gi[c];
        }
        li = lse[bh * T + i];
        di = delta[bh * T + i];
    }
#pragma unroll
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
    for (int j0 = 0; j0 < block_end; j0 += FA_BC) {
        __syncthreads();
        for (int e = threadIdx.x; e < FA_BC * D; e += blockDim.x) {
            const int j = j0 + e / D;
            ks[e] = j < S ? kh[(long long)j * D + e % D] : 0.0f;
            vs[e] = j < S ? vh[(long long)j * D + e % D] : 0.0f;
        }
        __syncthreads();
        const int jn = min(FA_BC, my_end - j0);
        for (int jj = 0; jj < jn; ++jj) {
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int c = 0; c < D; ++c) {
                s += qr[c] * ks[jj * D + c];
                dp += gr[c] * vs[jj * D + c];
            }
            const float ds = expf(s - li) * (dp - di) * scale;
#pragma unroll
            for (int c = 0; c < D; ++c) acc[c] += ds * ks[jj * D + c];
        }
    }
    if (i < T) {
        float* o = dq + (bh * T + i) * D;
#pragma unroll
        for (int c = 0; c < D; ++c) o[c] = acc[c];
    }
}

// dK, dV: one thread per key row j, FA_BR keys per block; tiles of FA_BC queries (Q, dO, L, Δ) in
// shared memory. Key j is seen by the queries i with j < valid[b] and (not causal or i ≥ j).
template <int D>
__device__ void flash_backward_dkdv(const float* __restrict__ q, const float* __restrict__ k,
                                    const float* __restrict__ v, const float* __restrict__ dout,
                                    const float* __restrict__ lse, const float* __restrict__ delta,
                                    float* __restrict__ dk, float* __restrict__ dv,
                                    const int* __restrict__ valid, int H, int T, int S, int causal,
                                    float scale) {
    __shared__ float qs[FA_BC * D];
    __shared__ float gs[FA_BC * D];
    __shared__ float ls[FA_BC];
    __shared__ float ds_[FA_BC];
    const long long bh = blockIdx.y;
    const int b = bh / H;
    const int k0 = blockIdx.x * FA_BR;
    const int j = k0 + threadIdx.x;
    const int kv = valid[b];
    const bool seen = j < S && j < kv;
    // Queries that see some key of the block start at k0 when causal (uniform over the block).
    const int block_start = causal ? k0 : 0;
    const int block_has_keys = k0 < kv;
    const float* qh = q + bh * T * D;
    const float* gh = dout + bh * T * D;
    float kr[D], vr[D], dka[D], dva[D];
#pragma unroll
    for (int c = 0; c < D; ++c) {
        kr[c] = seen ? k[(bh * S + j) * D + c] : 0.0f;
        vr[c] = seen ? v[(bh * S + j) * D + c] : 0.0f;
        dka[c] = 0.0f;
        dva[c] = 0.0f;
    }
    for (int i0 = block_start; block_has_keys && i0 < T; i0 += FA_BC) {
        __syncthreads();
        for (int e = threadIdx.x; e < FA_BC * D; e += blockDim.x) {
            const int i = i0 + e / D;
            qs[e] = i < T ? qh[(long long)i * D + e % D] : 0.0f;
            gs[e] = i < T ? gh[(long long)i * D + e % D] : 0.0f;
        }
        for (int e = threadIdx.x; e < FA_BC; e += blockDim.x) {
            const int i = i0 + e;
            ls[e] = i < T ? lse[bh * T + i] : ATTEND_INF;
            ds_[e] = i < T ? delta[bh * T + i] : 0.0f;
        }
        __syncthreads();
        if (!seen) continue;
        const int in = min(FA_BC, T - i0);
        for (int ii = 0; ii < in; ++ii) {
            if (causal && i0 + ii < j) continue;
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int c = 0; c < D; ++c) {
                s += qs[ii * D + c] * kr[c];
                dp += gs[ii * D + c] * vr[c];
            }
            const float p = expf(s * scale - ls[ii]);
            const float dsv = p * (dp - ds_[ii]) * scale;
#pragma unroll
            for (int c = 0; c < D; ++c) {
                dva[c] += p * gs[ii * D + c];
                dka[c] += dsv * qs[ii * D + c];
            }
        }
    }
    if (j < S) {
#pragma unroll
        for (int c = 0; c < D; ++c) {
            dk[(bh * S + j) * D + c] = dka[c];
            dv[(bh * S + j) * D + c] = dva[c];
        }
    }
}

// Δ_i = Σ_c dO_ic O_ic, one thread per query row (any head size).
extern "C" __global__ void flash_backward_delta(const float* o, const float* dout, float* delta,
                                                long long rows, int d) {
    FOR_EACH(r, rows) {
        float s = 0.0f;
        for (int c = 0; c < d; ++c) s += o[r * d + c] * dout[r * d + c];
        delta[r] = s;
    }
}

#define FLASH_INSTANCES(D)                                                                          \
    extern "C" __global__ void __launch_bounds__(FA_BR) flash_forward_d##D(                         \
        const float* q, const float* k, const float* v, float* o, float* lse, const int* valid,     \
        int H, int T, int S, int causal, float scale) {                                             \
        flash_forward<D>(q, k, v, o, lse, valid, H, T, S, causal, scale);                           \
    }                                                                                               \
    extern "C" __global__ void __launch_bounds__(FA_BR) flash_backward_dq_d##D(                     \
        const float* q, const float* k, const float* v, const float* dout, const float* lse,        \
        const float* delta, float* dq, const int* valid, int H, int T, int S, int causal,           \
        float scale) {                                                                              \
        flash_backward_dq<D>(q, k, v, dout, lse, delta, dq, valid, H, T, S, causal, scale);         \
    }                                                                                               \
    extern "C" __global__ void __launch_bounds__(FA_BR) flash_backward_dkdv_d##D(                   \
        const float* q, const float* k, const float* v, const float* dout, const float* lse,        \
        const float* delta, float* dk, float* dv, const int* valid, int H, int T, int S,            \
        int causal, float scale) {                                                                  \
        flash_backward_dkdv<D>(q, k, v, dout, lse, delta, dk, dv, valid, H, T, S, causal, scale);   \
    }

FLASH_INSTANCES(16)
FLASH_INSTANCES(32)
FLASH_INSTANCES(64)
FLASH_INSTANCES(128)
