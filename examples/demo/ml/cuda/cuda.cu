// libdemo-cuda.so: device query and a vector add kernel on the CUDA runtime.
#include "demo_backend.h"

#include <cuda_runtime.h>

#include <cstdio>

namespace {

__global__ void add_kernel(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

bool check(cudaError_t e, const char *what, char *err, size_t len) {
    if (e == cudaSuccess) return true;
    std::snprintf(err, len, "%s: %s", what, cudaGetErrorString(e));
    return false;
}

struct DeviceBuffer {
    float *p = nullptr;
    ~DeviceBuffer() { cudaFree(p); }
};

int device_count() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

int device_info(int index, demo_gpu *out) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, index) != cudaSuccess) return -1;
    out->index = index;
    std::snprintf(out->name, sizeof out->name, "%s", p.name);
    out->major = p.major;
    out->minor = p.minor;
    out->multiprocessors = p.multiProcessorCount;
    out->total_memory = p.totalGlobalMem;
    return 0;
}

int vector_add(const float *a, const float *b, float *c, int n, char *err, size_t len) {
    size_t bytes = size_t(n) * sizeof(float);
    DeviceBuffer da, db, dc;
    if (!check(cudaMalloc(&da.p, bytes), "cudaMalloc", err, len) ||
        !check(cudaMalloc(&db.p, bytes), "cudaMalloc", err, len) ||
        !check(cudaMalloc(&dc.p, bytes), "cudaMalloc", err, len) ||
        !check(cudaMemcpy(da.p, a, bytes, cudaMemcpyHostToDevice), "cudaMemcpy", err, len) ||
        !check(cudaMemcpy(db.p, b, bytes, cudaMemcpyHostToDevice), "cudaMemcpy", err, len))
        return -1;
    add_kernel<<<(n + 255) / 256, 256>>>(da.p, db.p, dc.p, n);
    if (!check(cudaGetLastError(), "add_kernel", err, len) ||
        !check(cudaMemcpy(c, dc.p, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy", err, len))
        return -1;
    return 0;
}

const demo_backend cuda = {DEMO_BACKEND_ABI, "cuda", device_count, device_info, vector_add};

}  // namespace

extern "C" const demo_backend *demo_backend_init(char *err, size_t len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        std::snprintf(err, len, "no GPU found (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        return nullptr;
    }
    if (n == 0) {
        std::snprintf(err, len, "no GPU found (cudaGetDeviceCount: 0 devices)");
        return nullptr;
    }
    // Fails when this build has no kernel image for the GPU (CMAKE_CUDA_ARCHITECTURES).
    cudaFuncAttributes attr;
    e = cudaFuncGetAttributes(&attr, add_kernel);
    if (e != cudaSuccess) {
        demo_gpu g = {};
        device_info(0, &g);
        std::snprintf(err, len, "GPU %s (sm_%d%d) not usable by this build (%s)", g.name, g.major,
                      g.minor, cudaGetErrorString(e));
        return nullptr;
    }
    return &cuda;
}
