// Label-smoothed cross-entropy over the last axis with an ignored index (the CPU twin:
// ops/cross_entropy.rs). Logits z [N, V], targets y [N]; one block per row.
//
// lse_i = m + ln Σ_v e^{z_iv − m};  −log p_iy = lse_i − z_iy;  mean_v(−log p_iv) = lse_i − mean_v z_iv;
// ℓ_i = (1 − ε)(lse_i − z_iy) + ε (lse_i − mean_v z_iv); an ignored row (y_i = ignore) gives ℓ_i = 0.
// The loss is Σ ℓ_i / n over the n counted rows (summed on the host).
// Backward: dz_iv = s (e^{z_iv − lse_i} − ε/V) − s (1 − ε)[v = y_i], s = dloss / n; ignored rows 0.

extern "C" __global__ void cross_entropy_forward(const float* z, const unsigned* y, float* loss,
                                                 float* lse, int v, float eps, int has_ignore,
                                                 unsigned ignore) {
    const long long row = blockIdx.x;
    const float* zr = z + row * v;
    const unsigned t = y[row];
    if (has_ignore && t == ignore) {
        if (threadIdx.x == 0) {
            loss[row] = 0.0f;
            lse[row] = 0.0f;
        }
        return;
    }
    float m = -ATTEND_INF;
    for (int i = threadIdx.x; i < v; i += blockDim.x) m = fmaxf(m, zr[i]);
    m = block_max(m);
    float s = 0.0f, zs = 0.0f;
    for (int i = threadIdx.x; i < v; i += blockDim.x) {
        s += expf(zr[i] - m);
        zs += zr[i];
    }
    s = block_sum(s);
    zs = block_sum(zs);
    if (threadIdx.x == 0) {
        const float l = m + logf(s);
        lse[row] = l;
        loss[row] = (1.0f - eps) * (l - zr[t]) + eps * (l - zs / v);
    }
}

extern "C" __global__ void cross_entropy_backward(const float* z, const unsigned* y, const float* lse,
                                                  float* dz, int v, float eps, int has_ignore,
                                                  unsigned ignore, float s) {
    const long long row = blockIdx.x;
    const float* zr = z + row * v;
    float* dr = dz + row * v;
    const unsigned t = y[row];
    const bool skip = has_ignore && t == ignore;
    const float l = lse[row], off = eps / v;
    for (int i = threadIdx.x; i < v; i += blockDim.x) {
        float g = 0.0f;
        if (!skip) {
            g = (expf(zr[i] - l) - off) * s;
            if ((unsigned)i == t) g -= (1.0f - eps) * s;
        }
        dr[i] = g;
    }
}
