package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ToolsDirEnv names the variable that points the harness at a folder holding etcd, kube-apiserver and,
// for StartKwok, kwok plus kwok-stages/. Without it the harness asks build-tools.sh for its cache folder.
const ToolsDirEnv = "KITEFN_TOOLS_DIR"

// BuildToolsEnv, set to 1, lets ToolsDir build missing binaries itself (10-25 minutes on 2 cores). Off by
// default because `go test` would hit its 10-minute timeout and parallel test packages would all wait on it.
const BuildToolsEnv = "KITEFN_BUILD_TOOLS"

// ToolsDir returns the folder holding the etcd and kube-apiserver binaries: $KITEFN_TOOLS_DIR if set, else the
// cache folder printed by tests/harness/build-tools.sh (which only builds when KITEFN_BUILD_TOOLS=1).
func ToolsDir(ctx context.Context) (string, error) {
	return toolsDir(ctx, "etcd", "kube-apiserver")
}

// toolsDir resolves the tools folder and checks that every name in need is there.
func toolsDir(ctx context.Context, need ...string) (string, error) {
	if dir := os.Getenv(ToolsDirEnv); dir != "" {
		if missing := missingTools(dir, need); len(missing) > 0 {
			return "", fmt.Errorf("%s=%s lacks %s: point it at a folder made by `make tools` "+
				"(tests/harness/build-tools.sh), or unset it to use the build cache", ToolsDirEnv, dir,
				strings.Join(missing, ", "))
		}
		return dir, nil
	}
	script, err := buildScript()
	if err != nil {
		return "", err
	}
	dir, err := runBuildScript(ctx, script, "dir")
	if err != nil {
		return "", err
	}
	missing := missingTools(dir, need)
	if len(missing) > 0 && os.Getenv(BuildToolsEnv) == "1" {
		if dir, err = runBuildScript(ctx, script, "all"); err != nil {
			return "", err
		}
		missing = missingTools(dir, need)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s not built yet in %s: run `make tools` once (or %s all; 10-25 min on 2 cores), "+
			"set %s=1 to let tests build it, or set %s to a folder that has it",
			strings.Join(missing, ", "), dir, script, BuildToolsEnv, ToolsDirEnv)
	}
	return dir, nil
}

// buildScript finds build-tools.sh next to this source file: tests run from their own package folders, so
// neither the working directory nor the module root can be assumed.
func buildScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locate build-tools.sh: runtime.Caller failed; set " + ToolsDirEnv)
	}
	script := filepath.Join(filepath.Dir(file), "build-tools.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("locate build-tools.sh (binary built with -trimpath or moved?): %w; set %s",
			err, ToolsDirEnv)
	}
	return script, nil
}

// runBuildScript runs build-tools.sh with one action and returns the folder it prints as its last line.
func runBuildScript(ctx context.Context, script, action string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, action)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if action != "dir" {
		cmd.Stderr = os.Stderr // a long build should show progress
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", script, action, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("%s %s printed no folder", script, action)
	}
	return dir, nil
}

// missingTools lists the names in need that are not in dir (binaries must be executable).
func missingTools(dir string, need []string) []string {
	var missing []string
	for _, name := range need {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err != nil:
			missing = append(missing, name)
		case !fi.IsDir() && fi.Mode()&0o111 == 0:
			missing = append(missing, name+" (not executable)")
		}
	}
	return missing
}
