/* demo_core.h - C API of libdemo_core.so, used by the Go server through cgo. */
#ifndef DEMO_CORE_H
#define DEMO_CORE_H

#include <stddef.h>

#if defined(__GNUC__)
#define DEMO_API __attribute__((visibility("default")))
#else
#define DEMO_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct demo_gpu {
    int index;
    char name[256];
    int major, minor; /* compute capability */
    int multiprocessors;
    unsigned long long total_memory; /* bytes */
} demo_gpu;

typedef struct demo_result {
    int n;           /* elements in c = a + b, with a[i] = i and b[i] = 2i */
    double sum;      /* sum of c as computed by the backend */
    double expected; /* 3 * n * (n - 1) / 2 */
} demo_result;

/* Loads a backend from lib_dir: libdemo-cuda.so when it loads and finds a
   usable GPU, otherwise libdemo-cpu.so. Returns 0, or -1 with err filled. */
DEMO_API int demo_init(const char *lib_dir, char *err, size_t errlen);

DEMO_API const char *demo_backend_name(void); /* "cpu", "cuda", or "" */
/* One line saying why a present CUDA backend is not used, or "". */
DEMO_API const char *demo_notice(void);
DEMO_API int demo_gpu_count(void);
DEMO_API int demo_gpu_info(int index, demo_gpu *out); /* 0 or -1 */
/* Runs the vector add on the backend (1 <= n <= 1<<22). 0, or -1 with err. */
DEMO_API int demo_compute(int n, demo_result *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
