// Command kitefn is the one binary behind every kitefn Knative service: FUNCTION_TARGET picks the function a
// service runs; unset or "all" runs every function in one process (make run).
package main

import (
	"os"

	"github.com/kitefn/kitefn/functions/clusters"
	"github.com/kitefn/kitefn/functions/discovery"
	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
)

func main() {
	os.Exit(runtime.Main(runtime.Options{
		Functions: map[string]func() runtime.Handler{
			"clusters":  clusters.New,
			"discovery": discovery.New,
			"resources": resources.New,
		},
		Setup: platform.Setup,
		Check: platform.Check,
	}))
}
