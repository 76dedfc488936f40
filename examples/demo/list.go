package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

// list prints the models of the server at $DEMO_HOST, like `ollama list`.
func list(w io.Writer) error {
	host, port, _ := net.SplitHostPort(hostPort())
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/api/tags")
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("demo server not answering at %s (%v)", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("demo server at %s answered %s", addr, resp.Status)
	}
	var tags struct {
		Models []Model `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tags); err != nil {
		return fmt.Errorf("bad answer from demo server at %s: %v", addr, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE")
	for _, m := range tags.Models {
		fmt.Fprintf(tw, "%s\t%s\n", m.Name, humanSize(m.Size))
	}
	return tw.Flush()
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "KMGTPE"[exp])
}
