package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// FileServer serves one file over HTTP (with Range support) so that a
// provider can download it.
type FileServer struct {
	// URL is where the file is served.
	URL string

	srv    *http.Server
	ln     net.Listener
	served atomic.Int64
	done   chan error
}

// ServeFile serves path at http://addr/<base name>. An empty addr or one
// with port 0 picks a free port on loopback ("127.0.0.1:0"). Stop with
// Close.
func ServeFile(path, addr string) (*FileServer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("serving %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("serving %s: not a regular file", path)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	name := filepath.Base(path)
	fs := &FileServer{ln: ln, done: make(chan error, 1)}
	host := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	fs.URL = (&url.URL{Scheme: "http", Host: host, Path: "/" + name}).String()
	mux := http.NewServeMux()
	mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, "file unavailable", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(&countingWriter{ResponseWriter: w, n: &fs.served}, r, name, st.ModTime(), f)
	})
	fs.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { fs.done <- fs.srv.Serve(ln) }()
	return fs, nil
}

// Served returns the bytes sent so far (over all requests).
func (s *FileServer) Served() int64 { return s.served.Load() }

// Close stops the server, waiting up to the context for downloads in
// flight.
func (s *FileServer) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}
