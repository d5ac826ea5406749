// Command baseline is the yardstick of kitefn's cold start: a bare net/http server that links client-go (and
// runs its package init, as any function talking to Kubernetes must) and answers /health/readiness.
package main

import (
	"fmt"
	"net/http"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	// Building a clientset makes the comparison honest: kitefn pays for the same scheme registration.
	if _, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("GET /health/readiness", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	if err := http.ListenAndServe(os.Getenv("LISTEN_ADDRESS"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
