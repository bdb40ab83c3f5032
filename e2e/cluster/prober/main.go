// Command prober runs in a pod of the test cluster and opens a new TCP
// connection to each of its targets at a fixed rate, recording what
// became of every attempt. The cluster tests read the record through the
// API server's pod proxy, so each attempt is a real connection from a
// real pod, through nftproxy's rules on a real node.
//
//	prober -listen :8080 -rate 20 -timeout 1s NAME=HOST:PORT ...
//
// GET /attempts?target=NAME&since=RFC3339NANO returns the attempts as JSON;
// POST /targets?name=NAME&addr=HOST:PORT adds a target while it runs.
// A target answers a connection with its hostname (agnhost's netexec does
// on GET /hostname); the prober records which backend answered.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Attempt is one connection and what became of it.
type Attempt struct {
	Start time.Time `json:"start"`
	// Took is how long the attempt lasted, answer or error.
	Took time.Duration `json:"took"`
	// Result is "ok", "refused", "timeout", "reset", "unreachable" or
	// "error".
	Result string `json:"result"`
	// Backend is the hostname that answered, when one did.
	Backend string `json:"backend,omitempty"`
	Error   string `json:"error,omitempty"`
}

type record struct {
	mu       sync.Mutex
	attempts map[string][]Attempt
}

func (r *record) add(target string, a Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[target] = append(r.attempts[target], a)
}

func (r *record) since(target string, t time.Time) []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Attempt{}
	for _, a := range r.attempts[target] {
		if !a.Start.Before(t) {
			out = append(out, a)
		}
	}
	return out
}

func main() {
	listen := flag.String("listen", ":8080", "address of the results server")
	rate := flag.Int("rate", 20, "connections a second to each target")
	timeout := flag.Duration("timeout", time.Second, "how long an attempt may take")
	flag.Parse()
	targets := map[string]string{}
	for _, arg := range flag.Args() {
		name, addr, ok := strings.Cut(arg, "=")
		if !ok {
			log.Fatalf("target %q: want NAME=HOST:PORT", arg)
		}
		targets[name] = addr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	rec := &record{attempts: map[string][]Attempt{}}
	for name, addr := range targets {
		go probe(ctx, rec, name, addr, *rate, *timeout)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /targets", func(w http.ResponseWriter, req *http.Request) {
		name, addr := req.URL.Query().Get("name"), req.URL.Query().Get("addr")
		if name == "" || addr == "" {
			http.Error(w, "want name and addr", http.StatusBadRequest)
			return
		}
		go probe(ctx, rec, name, addr, *rate, *timeout)
		fmt.Fprintln(w, "probing", name, addr)
	})
	mux.HandleFunc("/attempts", func(w http.ResponseWriter, req *http.Request) {
		var since time.Time
		if s := req.URL.Query().Get("since"); s != "" {
			var err error
			if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rec.since(req.URL.Query().Get("target"), since))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// probe connects to addr rate times a second until ctx ends. Each attempt
// runs on its own, so a slow one never delays the next.
func probe(ctx context.Context, rec *record, name, addr string, rate int, timeout time.Duration) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			go func() { rec.add(name, attempt(addr, timeout)) }()
		}
	}
}

// attempt opens one connection, asks for the hostname and reads the answer.
func attempt(addr string, timeout time.Duration) Attempt {
	a := Attempt{Start: time.Now()}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		a.Result, a.Error = classify(err), err.Error()
		a.Took = time.Since(a.Start)
		return a
	}
	defer conn.Close()
	_ = conn.SetDeadline(a.Start.Add(timeout))
	_, err = fmt.Fprintf(conn, "GET /hostname HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(conn)
	}
	a.Took = time.Since(a.Start)
	if err != nil {
		a.Result, a.Error = classify(err), err.Error()
		return a
	}
	resp := string(body)
	status, _, _ := strings.Cut(resp, "\r\n")
	if !strings.Contains(status, " 200 ") {
		a.Result, a.Error = "error", "answer: "+status
		return a
	}
	if _, b, ok := strings.Cut(resp, "\r\n\r\n"); ok {
		a.Backend = strings.TrimSpace(b)
	}
	a.Result = "ok"
	return a
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}
