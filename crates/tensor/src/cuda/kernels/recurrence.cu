// Pointwise parts of one GRU / LSTM step over a padded batch (the CPU twin: ops/recurrence.rs; the
// products gh = h W_hhᵀ + b_hh, dh_prev += dgh W_hh, dW_hh += dghᵀ h_prev run through cuBLAS).
//
// Thread (b, j), b < B, j < H. Row b takes part in step t iff t < len[b]; other rows keep their
// state, and their outputs stay zero. Offsets (in floats) locate the step inside the packed buffers:
//   x row b:    xp  + x_off + b · x_stride      (the [G] input projection, G = 3H or 4H)
//   out row b:  out + o_off + b · o_stride      (the [H] output h_t)
//   saved:      hs/cs + s_off + b · H            (state before the step, for the backward)
//   acts:       acts + a_off + b · (4H | 5H)     (gate activations, for the backward)
//
// GRU (gates r, z, n):  r = σ(x_r + gh_r), z = σ(x_z + gh_z), n = tanh(x_n + r ⊙ gh_n),
//                       h' = (1 − z) ⊙ n + z ⊙ h;            acts = [r, z, n, gh_n]
// LSTM (gates i, f, g, o): i, f, o = σ(x + gh), g = tanh(x_g + gh_g), c' = f ⊙ c + i ⊙ g,
//                       h' = o ⊙ tanh c';                     acts = [i, f, g, o, tanh c']

extern "C" __global__ void gru_step_forward(const float* xp, long long x_off, long long x_stride,
                                            const float* gh, float* h, float* hs, long long s_off,
                                            float* acts, long long a_off, float* out, long long o_off,
                                            long long o_stride, const int* len, int t, int B, int H) {
    FOR_EACH(e, (long long)B * H) {
        const int b = e / H, j = e % H;
        const float hp = h[e];
        hs[s_off + e] = hp;
        if (t >= len[b]) continue;
        const float* x = xp + x_off + b * x_stride;
        const float* g = gh + (long long)b * 3 * H;
        float* a = acts + a_off + (long long)b * 4 * H;
        const float r = sigmoidf(x[j] + g[j]);
        const float z = sigmoidf(x[H + j] + g[H + j]);
        const float ghn = g[2 * H + j];
        const float n = tanhf(x[2 * H + j] + r * ghn);
        a[j] = r;
        a[H + j] = z;
        a[2 * H + j] = n;
        a[3 * H + j] = ghn;
        const float hn = (1.0f - z) * n + z * hp;
        h[e] = hn;
        out[o_off + b * o_stride + j] = hn;
    }
}

extern "C" __global__ void lstm_step_forward(const float* xp, long long x_off, long long x_stride,
                                             const float* gh, float* h, float* c, float* hs, float* cs,
                                             long long s_off, float* acts, long long a_off, float* out,
                                             long long o_off, long long o_stride, const int* len, int t,
                                             int B, int H) {
    FOR_EACH(e, (long long)B * H) {
        const int b = e / H, j = e % H;
        hs[s_off + e] = h[e];
        cs[s_off + e] = c[e];
        if (t >= len[b]) continue;
        const float* x = xp + x_off + b * x_stride;
        const float* g = gh + (long long)b * 4 * H;
        float* a = acts + a_off + (long long)b * 5 * H;
        const float i = sigmoidf(x[j] + g[j]);
        const float f = sigmoidf(x[H + j] + g[H + j]);
        const float gg = tanhf(x[2 * H + j] + g[2 * H + j]);
        const float o = sigmoidf(x[3 * H + j] + g[3 * H + j]);
        const float cn = f * c[e] + i * gg;
        const float tc = tanhf(cn);
        a[j] = i;
        a[H + j] = f;
        a[2 * H + j] = gg;
        a[3 * H + j] = o;
        a[4 * H + j] = tc;
        c[e] = cn;
        h[e] = o * tc;
        out[o_off + b * o_stride + j] = o * tc;
    }
}

// Backward of one step. On entry dh (and dc) hold the gradient flowing from later steps; the output
// gradient of the step (gout row b at go_off + b · o_stride) is added first. Writes dx (into dxp)
// and dgh [B, G] (zero for rows not in the step); leaves in dh the direct part of dh_prev (GRU:
// dh ⊙ z; LSTM: 0) — the caller adds dgh W_hh — and in dc the LSTM's dc_prev = dc' ⊙ f.
//
// GRU:  dn = dh (1 − z)(1 − n²), dz = dh (h − n) z (1 − z), dr = dn gh_n r (1 − r);
//       dx = [dr, dz, dn], dgh = [dr, dz, dn ⊙ r]
// LSTM: dc' = dc + dh o (1 − tanh² c'); dx = dgh = [dc' g i(1 − i), dc' c f(1 − f), dc' i (1 − g²),
//       dh tanh c' o (1 − o)]
extern "C" __global__ void gru_step_backward(const float* gout, long long go_off, long long o_stride,
                                             const float* hs, long long s_off, const float* acts,
                                             long long a_off, float* dh, float* dxp, long long x_off,
                                             long long x_stride, float* dgh, const int* len, int t,
                                             int B, int H) {
    FOR_EACH(e, (long long)B * H) {
        const int b = e / H, j = e % H;
        float* dg = dgh + (long long)b * 3 * H;
        if (t >= len[b]) {
            dg[j] = 0.0f;
            dg[H + j] = 0.0f;
            dg[2 * H + j] = 0.0f;
            continue;
        }
        const float* a = acts + a_off + (long long)b * 4 * H;
        const float r = a[j], z = a[H + j], n = a[2 * H + j], ghn = a[3 * H + j];
        const float d = dh[e] + gout[go_off + b * o_stride + j];
        const float dn = d * (1.0f - z) * (1.0f - n * n);
        const float dz = d * (hs[s_off + e] - n) * z * (1.0f - z);
        const float dr = dn * ghn * r * (1.0f - r);
        float* dx = dxp + x_off + b * x_stride;
        dx[j] = dr;
        dx[H + j] = dz;
        dx[2 * H + j] = dn;
        dg[j] = dr;
        dg[H + j] = dz;
        dg[2 * H + j] = dn * r;
        dh[e] = d * z;
    }
}

extern "C" __global__ void lstm_step_backward(const float* gout, long long go_off, long long o_stride,
                                              const float* cs, long long s_off, const float* acts,
                                              long long a_off, float* dh, float* dc, float* dxp,
                                              long long x_off, long long x_stride, float* dgh,
                                              const int* len, int t, int B, int H) {
    FOR_EACH(e, (long long)B * H) {
        const int b = e / H, j = e % H;
        float* dg = dgh + (long long)b * 4 * H;
        if (t >= len[b]) {
            for (int q = 0; q < 4; ++q) dg[q * H + j] = 0.0f;
            continue;
        }
        const float* a = acts + a_off + (long long)b * 5 * H;
        const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], tc = a[4 * H + j];
        const float d = dh[e] + gout[go_off + b * o_stride + j];
        const float dct = dc[e] + d * o * (1.0f - tc * tc);
        const float pre[4] = {dct * g * i * (1.0f - i), dct * cs[s_off + e] * f * (1.0f - f),
                              dct * i * (1.0f - g * g), d * tc * o * (1.0f - o)};
        float* dx = dxp + x_off + b * x_stride;
        for (int q = 0; q < 4; ++q) {
            dx[q * H + j] = pre[q];
            dg[q * H + j] = pre[q];
        }
        dc[e] = dct * f;
        dh[e] = 0.0f;
    }
}

// Copies a state [B, H] into row `o_off` of every batch row of a packed buffer (final h or c into
// out[:, T] / out[:, T + 1]), or back (`to_state` ≠ 0: gout rows into dh / dc).
extern "C" __global__ void recurrence_state_copy(float* state, float* packed, long long o_off,
                                                 long long o_stride, int to_state, int B, int H) {
    FOR_EACH(e, (long long)B * H) {
        const int b = e / H, j = e % H;
        float* p = packed + o_off + b * o_stride + j;
        if (to_state) state[e] = *p;
        else *p = state[e];
    }
}
