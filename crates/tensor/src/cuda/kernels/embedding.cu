// Embedding lookup (the CPU twin: ops/gather.rs): out[n, :] = table[ids[n], :] for a table [V, D];
// backward: dtable[ids[n], :] += dout[n, :] (atomic: an id may repeat). Ids are checked (< V) on the host.

extern "C" __global__ void gather_rows(const float* table, const unsigned* ids, float* out, long long n,
                                       int d) {
    FOR_EACH(e, n * d) {
        const long long r = e / d, c = e % d;
        out[e] = table[(long long)ids[r] * d + c];
    }
}

extern "C" __global__ void scatter_add_rows(const float* dout, const unsigned* ids, float* dtable,
                                            long long n, int d) {
    FOR_EACH(e, n * d) {
        const long long r = e / d, c = e % d;
        atomicAdd(&dtable[(long long)ids[r] * d + c], dout[e]);
    }
}
