// libdemo_core.so: picks and loads a backend module at run time.
#include "demo_backend.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

namespace {

std::mutex mu;
const demo_backend *backend = nullptr;
std::string notice;

void set_err(char *err, size_t len, const std::string &msg) {
    if (err && len) std::snprintf(err, len, "%s", msg.c_str());
}

// Loads dir/libdemo-<name>.so; nullptr with `why` set when it is unusable.
const demo_backend *load(const std::string &dir, const std::string &name, std::string &why) {
    std::string path = dir + "/libdemo-" + name + ".so";
    void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        why = "cannot load " + name + " backend (" + dlerror() + ")";
        return nullptr;
    }
    auto init = reinterpret_cast<demo_backend_init_fn>(dlsym(h, DEMO_BACKEND_INIT));
    if (!init) {
        why = "cannot load " + name + " backend (" + path + ": no " DEMO_BACKEND_INIT ")";
        return nullptr;
    }
    char buf[512] = "";
    const demo_backend *b = init(buf, sizeof buf);
    if (!b || b->abi != DEMO_BACKEND_ABI) {
        why = buf[0] ? std::string(buf) : "cannot load " + name + " backend (wrong ABI)";
        return nullptr;  // the handle stays open: the CUDA runtime dislikes unloading
    }
    return b;
}

}  // namespace

extern "C" {

int demo_init(const char *lib_dir, char *err, size_t errlen) {
    std::lock_guard<std::mutex> lock(mu);
    if (backend) return 0;
    std::string dir = lib_dir ? lib_dir : ".";
    std::string why;
    struct stat st;
    if (::stat((dir + "/libdemo-cuda.so").c_str(), &st) == 0) {
        backend = load(dir, "cuda", why);
        if (!backend) notice = why + "; running on CPU";
    }
    if (!backend) backend = load(dir, "cpu", why);
    if (!backend) {
        set_err(err, errlen, "no usable backend in " + dir + ": " + why);
        return -1;
    }
    return 0;
}

const char *demo_backend_name(void) { return backend ? backend->name : ""; }

const char *demo_notice(void) { return notice.c_str(); }

int demo_gpu_count(void) { return backend ? backend->device_count() : 0; }

int demo_gpu_info(int index, demo_gpu *out) {
    if (!backend || !out || index < 0 || index >= backend->device_count()) return -1;
    return backend->device_info(index, out);
}

int demo_compute(int n, demo_result *out, char *err, size_t errlen) {
    if (n < 1 || n > (1 << 22) || !out) {  // keeps every value exact in a float
        set_err(err, errlen, "n must be in [1, 4194304]");
        return -1;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!backend) {
        set_err(err, errlen, "demo_init has not succeeded");
        return -1;
    }
    std::vector<float> a(n), b(n), c(n);
    std::iota(a.begin(), a.end(), 0.0f);
    std::transform(a.begin(), a.end(), b.begin(), [](float x) { return 2 * x; });
    if (backend->vector_add(a.data(), b.data(), c.data(), n, err, errlen) != 0) return -1;
    out->n = n;
    out->sum = std::accumulate(c.begin(), c.end(), 0.0);
    out->expected = 3.0 * n * (n - 1.0) / 2.0;
    return 0;
}

}  // extern "C"
