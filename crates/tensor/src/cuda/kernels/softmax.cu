// Softmax and log-softmax over the last axis (the CPU twin: ops/softmax.rs).
// One block per row of length d.
//
// softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m}, m = max_j x_j; an all-−∞ row gives zeros.
// log_softmax(x)_i = x_i − m − ln Σ_j e^{x_j − m}.
// Backward: softmax dx = y ⊙ (dy − Σ dy ⊙ y); log-softmax dx = dy − e^{y} Σ dy.

extern "C" __global__ void softmax_forward(const float* x, float* y, int d, int log) {
    const long long row = blockIdx.x;
    const float* xr = x + row * d;
    float* yr = y + row * d;
    float m = -ATTEND_INF;
    for (int i = threadIdx.x; i < d; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m);
    if (m == -ATTEND_INF && !log) {
        for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = 0.0f;
        return;
    }
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += expf(xr[i] - m);
    s = block_sum(s);
    if (log) {
        const float lse = m + logf(s);
        for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] - lse;
    } else {
        const float inv = 1.0f / s;
        for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = expf(xr[i] - m) * inv;
    }
}

extern "C" __global__ void softmax_backward(const float* y, const float* dy, float* dx, int d, int log) {
    const long long row = blockIdx.x;
    const float* yr = y + row * d;
    const float* gr = dy + row * d;
    float* xr = dx + row * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += log ? gr[i] : gr[i] * yr[i];
    s = block_sum(s);
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        xr[i] = log ? gr[i] - expf(yr[i]) * s : yr[i] * (gr[i] - s);
}
