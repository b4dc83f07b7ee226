// Helpers prepended to every kernel source of attend's CUDA device (see kernels/mod.rs).
// Row kernels run one block per row with blockDim.x a multiple of 32 (at most 1024).

#define ATTEND_INF __int_as_float(0x7f800000)

// Sum of x over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Maximum of x over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sum of x over the block; every thread gets the result. The leading barrier lets a block call it
// twice in a row (a warp may still read `part` from the previous call).
__device__ float block_sum(float x) {
    __shared__ float part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads();
    if (lane == 0) part[warp] = x;
    __syncthreads();
    return warp_sum(lane < warps ? part[lane] : 0.0f);
}

// Maximum of x over the block; every thread gets the result (−∞ for an all-−∞ block).
__device__ float block_max(float x) {
    __shared__ float part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) part[warp] = x;
    __syncthreads();
    return warp_max(lane < warps ? part[lane] : -ATTEND_INF);
}

// Logistic sigmoid 1 / (1 + e^{−x}), stable for large |x| (as the CPU engine's `sigmoid`).
__device__ __forceinline__ float sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

// Grid-stride loop over n elements.
#define FOR_EACH(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)blockDim.x * gridDim.x)
