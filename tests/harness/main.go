package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
)

// Main is the body of a TestMain for a package whose tests share one cluster: it starts it (not under
// -short, where *c stays nil and tests that need it skip), runs the tests, stops it and exits.
//
//	var kube *harness.Cluster
//	func TestMain(m *testing.M) { harness.Main(m, &kube) }
func Main(m *testing.M, c **Cluster, opts ...Option) {
	MainWith(m, c, nil, opts...)
}

// MainWith is Main with a setup step (installing CRDs the package's tests share) run once the cluster is up.
func MainWith(m *testing.M, c **Cluster, setup func(*Cluster) error, opts ...Option) {
	flag.Parse()
	if !testing.Short() {
		cl, err := Start(context.Background(), opts...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "starting kube-apiserver: %v\n", err)
			os.Exit(1)
		}
		*c = cl
		if setup != nil {
			if err := setup(cl); err != nil {
				fmt.Fprintf(os.Stderr, "setting up the test cluster: %v\n", err)
				cl.Stop()
				os.Exit(1)
			}
		}
	}
	code := m.Run()
	if *c != nil {
		(*c).Stop()
	}
	os.Exit(code)
}
