package main

/*
#cgo CFLAGS: -I${SRCDIR}/ml/include
#cgo LDFLAGS: -L${SRCDIR}/dist/lib/demo -L${SRCDIR}/build/lib/demo -ldemo_core -Wl,-rpath,$ORIGIN/../lib/demo
#include <stdlib.h>
#include "demo_core.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"
)

// GPU is one device reported by the backend.
type GPU struct {
	Index           int    `json:"index"`
	Name            string `json:"name"`
	Compute         string `json:"compute"`
	Multiprocessors int    `json:"multiprocessors"`
	TotalMemory     uint64 `json:"total_memory"`
}

// Result is a vector add run on the backend and checked on the host.
type Result struct {
	Op       string  `json:"op"`
	N        int     `json:"n"`
	Sum      float64 `json:"sum"`
	Expected float64 `json:"expected"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error,omitempty"`
}

// libraryDir is $DEMO_LIBRARY_PATH, or {binary_dir}/../lib/demo.
func libraryDir() string {
	if dir := os.Getenv("DEMO_LIBRARY_PATH"); dir != "" {
		return dir
	}
	exe, err := os.Executable()
	if err != nil {
		return filepath.Join("..", "lib", "demo")
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), "..", "lib", "demo")
}

// initBackend loads a backend from dir; notice says why CUDA is not used.
func initBackend(dir string) (name, notice string, err error) {
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var buf [512]C.char
	if C.demo_init(cdir, &buf[0], C.size_t(len(buf))) != 0 {
		return "", "", errors.New(C.GoString(&buf[0]))
	}
	return C.GoString(C.demo_backend_name()), C.GoString(C.demo_notice()), nil
}

func gpus() []GPU {
	list := []GPU{}
	for i := 0; i < int(C.demo_gpu_count()); i++ {
		var g C.demo_gpu
		if C.demo_gpu_info(C.int(i), &g) != 0 {
			continue
		}
		list = append(list, GPU{
			Index:           int(g.index),
			Name:            C.GoString(&g.name[0]),
			Compute:         fmt.Sprintf("%d.%d", int(g.major), int(g.minor)),
			Multiprocessors: int(g.multiprocessors),
			TotalMemory:     uint64(g.total_memory),
		})
	}
	return list
}

func compute(n int) Result {
	r := Result{Op: "vector_add", N: n}
	var out C.demo_result
	var buf [512]C.char
	if C.demo_compute(C.int(n), &out, &buf[0], C.size_t(len(buf))) != 0 {
		r.Error = C.GoString(&buf[0])
		return r
	}
	r.Sum, r.Expected = float64(out.sum), float64(out.expected)
	r.OK = r.Sum == r.Expected
	return r
}
