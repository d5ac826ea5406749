// Command minidyn-server serves github.com/truora/minidyn (an in-memory DynamoDB) over HTTP, so tests can run
// the DynamoDB store against a real server in a separate process. It prints "listening on HOST:PORT" on stdout
// once it accepts connections, which is how tests/emulators learns the port (no free-port race with -addr :0).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/truora/minidyn/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("minidyn-server: listen: %v", err)
	}
	srv := &http.Server{Handler: serialized(server.NewServer()), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()

	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("minidyn-server: serve: %v", err)
	}
}

// serialized runs one request at a time. minidyn v0.8.2 locks its data operations but not CreateTable,
// DeleteTable or DescribeTable, which touch the same table map: tests that create tables in parallel would crash
// it with a concurrent map write. Data operations are serialised inside minidyn anyway, so this costs nothing.
func serialized(h http.Handler) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		h.ServeHTTP(w, r)
	})
}
