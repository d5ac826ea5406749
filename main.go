// Command kitefn is the one binary behind every kitefn Knative service: FUNCTION_TARGET picks the function a
// service runs; unset or "all" runs every function in one process (make run). functions/catalog lists them.
package main

import (
	"os"

	"github.com/kitefn/kitefn/functions/catalog"
	"github.com/kitefn/kitefn/shared/runtime"
)

func main() {
	os.Exit(runtime.Main(catalog.Options()))
}
