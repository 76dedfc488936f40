/* demo_backend.h - the ABI between libdemo_core.so and the backend modules
   (libdemo-cpu.so, libdemo-cuda.so) that it loads with dlopen. */
#ifndef DEMO_BACKEND_H
#define DEMO_BACKEND_H

#include "demo_core.h"

#define DEMO_BACKEND_ABI 1
#define DEMO_BACKEND_INIT "demo_backend_init"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct demo_backend {
    int abi; /* DEMO_BACKEND_ABI */
    const char *name;
    int (*device_count)(void);
    int (*device_info)(int index, demo_gpu *out);
    /* c[i] = a[i] + b[i]; 0, or -1 with err filled */
    int (*vector_add)(const float *a, const float *b, float *c, int n, char *err, size_t errlen);
} demo_backend;

typedef const demo_backend *(*demo_backend_init_fn)(char *err, size_t errlen);

/* Exported by every backend: the backend, or NULL with the reason in err. */
DEMO_API const demo_backend *demo_backend_init(char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
