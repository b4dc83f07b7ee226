// One Adam / AdamW update of a parameter tensor (the CPU twin: attend's train/optimizer.rs, as
// PyTorch's torch.optim.Adam / AdamW). Bias corrections are computed on the host in f64:
//   step_size = lr / (1 − β₁ᵗ),  bc2_sqrt = √(1 − β₂ᵗ);  Adam: l2 = λ, decay = 1;  AdamW: l2 = 0,
//   decay = 1 − lr λ.
// Per element:  g ← g + l2 p;  p ← p · decay;  m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;
//               p ← p − step_size · m / (√v / bc2_sqrt + ε)

extern "C" __global__ void adam_step(float* p, const float* grad, float* m, float* v, long long n,
                                     float beta1, float beta2, float eps, float l2, float decay,
                                     float step_size, float bc2_sqrt) {
    FOR_EACH(i, n) {
        const float g = grad[i] + l2 * p[i];
        float x = p[i] * decay;
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        x -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        p[i] = x;
    }
}
