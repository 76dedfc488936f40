// Command demo is a tiny Ollama-shaped server: a Go HTTP API over a C/C++
// core library that runs a vector add on a CPU or CUDA backend.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Version is set at build time: go build -ldflags "-X main.Version=1.2.3".
var Version = "0.0.0-dev"

const defaultPort = "11434"

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: demo <command>

Commands:
  serve      start the server on $DEMO_HOST (default 127.0.0.1:11434)
  list       list the models of a running server
  version    print the version

Environment: DEMO_HOST, DEMO_MODELS (default ~/.demo/models), DEMO_LIBRARY_PATH
`)
}

func main() {
	cmd := ""
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve()
	case "list", "ls":
		err = list(os.Stdout)
	case "version", "--version", "-v":
		fmt.Printf("demo version %s\n", Version)
	case "help", "--help", "-h":
		usage(os.Stdout)
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// hostPort is $DEMO_HOST as host:port, the port defaulting to 11434.
func hostPort() string {
	h := strings.TrimPrefix(os.Getenv("DEMO_HOST"), "http://")
	if h == "" {
		h = "127.0.0.1"
	}
	if _, _, err := net.SplitHostPort(h); err != nil {
		h = net.JoinHostPort(strings.Trim(h, "[]"), defaultPort)
	}
	return h
}

// modelsDir is $DEMO_MODELS, or ~/.demo/models.
func modelsDir() string {
	if dir := os.Getenv("DEMO_MODELS"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".demo", "models")
}
