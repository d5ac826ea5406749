// Command floor is the yardstick of kitefn's search: a bare client-go program that lists the searched kinds'
// metadata (protobuf, resourceVersion=0, so the apiserver answers from its watch cache) concurrently, for one
// or several clusters, and keeps the names holding the term. It prints one JSON line: the duration of each run
// in nanoseconds, the objects listed and the names that matched in the last run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"
)

// Kinds are what the bench seeds and searches.
var kinds = []schema.GroupVersionResource{
	{Version: "v1", Resource: "pods"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
}

type result struct {
	Samples []int64 `json:"samples"`
	Objects int64   `json:"objects"`
	Matches int64   `json:"matches"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file of the cluster")
	runs := flag.Int("runs", 15, "measured runs")
	clusters := flag.Int("clusters", 1, "clients, each with its own connection, listing concurrently")
	fresh := flag.Bool("fresh", false, "build new clients (new connections) for every run, as a cold instance must")
	term := flag.String("q", "", "the name substring to keep")
	flag.Parse()
	res, err := run(context.Background(), *kubeconfig, *runs, *clusters, *fresh, *term)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig string, runs, clusters int, fresh bool, term string) (*result, error) {
	raw, err := os.ReadFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	newClients := func() ([]metadata.Interface, error) {
		out := make([]metadata.Interface, clusters)
		for i := range out {
			rc, err := clientcmd.RESTConfigFromKubeConfig(raw)
			if err != nil {
				return nil, err
			}
			rc.QPS, rc.Burst = -1, 0 // no client-side rate limit: the floor is what the apiserver can do
			// A Dial of its own keeps client-go from sharing one cached transport (and connection) between
			// clients, as separate clusters would not share one.
			rc.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
			if out[i], err = metadata.NewForConfig(rc); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var clients []metadata.Interface
	if !fresh {
		if clients, err = newClients(); err != nil {
			return nil, err
		}
		if _, _, err := listAll(ctx, clients, term); err != nil { // warms the connections
			return nil, err
		}
	}
	res := &result{}
	for i := 0; i < runs; i++ {
		start := time.Now()
		if fresh {
			if clients, err = newClients(); err != nil {
				return nil, err
			}
		}
		objects, matches, err := listAll(ctx, clients, term)
		if err != nil {
			return nil, err
		}
		res.Samples = append(res.Samples, int64(time.Since(start)))
		res.Objects, res.Matches = objects, matches
	}
	return res, nil
}

// listAll lists every kind on every client at once and counts the names holding term.
func listAll(ctx context.Context, clients []metadata.Interface, term string) (objects, matches int64, err error) {
	var nObjects, nMatches atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range clients {
		for _, gvr := range kinds {
			g.Go(func() error {
				list, err := c.Resource(gvr).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
				if err != nil {
					return fmt.Errorf("list %s: %w", gvr.Resource, err)
				}
				nObjects.Add(int64(len(list.Items)))
				for i := range list.Items {
					if strings.Contains(list.Items[i].Name, term) {
						nMatches.Add(1)
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	return nObjects.Load(), nMatches.Load(), nil
}
