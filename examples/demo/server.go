package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Model is one file in the models folder.
type Model struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// listModels lists the regular files in dir; none when dir is missing.
func listModels(dir string) ([]Model, error) {
	models := []Model{}
	entries, err := os.ReadDir(dir)
	if dir == "" || errors.Is(err, fs.ErrNotExist) {
		return models, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		info, err := os.Stat(filepath.Join(dir, e.Name()))
		if strings.HasPrefix(e.Name(), ".") || err != nil || !info.Mode().IsRegular() {
			continue
		}
		models = append(models, Model{Name: e.Name(), Size: info.Size()})
	}
	return models, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func routes(backend, libDir, notice string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("demo is running\n"))
	})
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": Version})
	})
	mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		models, err := listModels(modelsDir())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"models": models})
	})
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		result := compute(1 << 20)
		status := http.StatusOK
		if !result.OK {
			status = http.StatusInternalServerError
		}
		writeJSON(w, status, map[string]any{
			"version":      Version,
			"backend":      backend,
			"library_path": libDir,
			"notice":       notice,
			"gpus":         gpus(),
			"compute":      result,
		})
	})
	return mux
}

func serve() error {
	libDir := libraryDir()
	backend, notice, err := initBackend(libDir)
	if err != nil {
		return err
	}
	if notice != "" {
		log.Print(notice)
	}
	log.Printf("backend %s from %s", backend, libDir)
	for _, g := range gpus() {
		log.Printf("GPU %d: %s, compute %s, %d MiB", g.Index, g.Name, g.Compute, g.TotalMemory>>20)
	}

	ln, err := net.Listen("tcp", hostPort())
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: routes(backend, libDir, notice), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("demo %s listening on %s", Version, ln.Addr())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Print("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
