// Layer normalisation over the last axis (the CPU twin: ops/layer_norm.rs).
//
// y = (x − μ) r γ + β, μ = mean(x), r = 1/√(σ² + ε), σ² biased, over a row of length d.
// Backward, with x̂ = (x − μ) r and ĝ = dy ⊙ γ:
//   dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ⊙ x̂)),   dγ = Σ_rows dy ⊙ x̂,   dβ = Σ_rows dy.

// One block per row; saves μ and r of every row for the backward.
extern "C" __global__ void layer_norm_forward(const float* x, const float* gamma, const float* beta,
                                              float* y, float* mean, float* rstd, int d, float eps) {
    const long long row = blockIdx.x;
    const float* xr = x + row * d;
    float* yr = y + row * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    const float mu = block_sum(s) / d;
    float q = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) q += (xr[i] - mu) * (xr[i] - mu);
    const float r = rsqrtf(block_sum(q) / d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] - mu) * r * gamma[i] + beta[i];
    if (threadIdx.x == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// dx, one block per row.
extern "C" __global__ void layer_norm_backward_x(const float* x, const float* gamma, const float* dy,
                                                 const float* mean, const float* rstd, float* dx, int d) {
    const long long row = blockIdx.x;
    const float* xr = x + row * d;
    const float* gr = dy + row * d;
    float* dr = dx + row * d;
    const float mu = mean[row], r = rstd[row];
    float m1 = 0.0f, m2 = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float gh = gr[i] * gamma[i];
        m1 += gh;
        m2 += gh * (xr[i] - mu) * r;
    }
    m1 = block_sum(m1) / d;
    m2 = block_sum(m2) / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float xh = (xr[i] - mu) * r;
        dr[i] = r * (gr[i] * gamma[i] - m1 - xh * m2);
    }
}

// dγ, dβ: one thread per column j, summing over the rows (deterministic, no atomics).
extern "C" __global__ void layer_norm_backward_params(const float* x, const float* dy, const float* mean,
                                                      const float* rstd, float* dgamma, float* dbeta,
                                                      long long rows, int d) {
    FOR_EACH(j, d) {
        float sg = 0.0f, sb = 0.0f;
        for (long long row = 0; row < rows; ++row) {
            const float g = dy[row * d + j];
            sg += g * (x[row * d + j] - mean[row]) * rstd[row];
            sb += g;
        }
        dgamma[j] = sg;
        dbeta[j] = sb;
    }
}
