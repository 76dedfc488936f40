// libdemo-cpu.so: the backend that always works.
#include "demo_backend.h"

namespace {

int device_count() { return 0; }

int device_info(int, demo_gpu *) { return -1; }

int vector_add(const float *a, const float *b, float *c, int n, char *, size_t) {
    for (int i = 0; i < n; ++i) c[i] = a[i] + b[i];
    return 0;
}

const demo_backend cpu = {DEMO_BACKEND_ABI, "cpu", device_count, device_info, vector_add};

}  // namespace

extern "C" const demo_backend *demo_backend_init(char *, size_t) { return &cpu; }
