package emulators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FirestoreJarEnv names a Firestore emulator jar to use instead of looking for the Debian package's.
const FirestoreJarEnv = "KITEFN_FIRESTORE_EMULATOR_JAR"

// firestorePackage is the Debian package that ships the emulator jar.
const firestorePackage = "google-cloud-cli-firestore-emulator"

// firestoreMain is the emulator's entry point inside the jar; running it directly skips gcloud's ~5 s of
// start-up.
const firestoreMain = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"

// wellKnownFirestoreJars are where Cloud SDK installs put the jar when dpkg does not know it.
func wellKnownFirestoreJars() []string {
	const rel = "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
	dirs := []string{"/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk"}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "google-cloud-sdk"))
	}
	jars := make([]string, len(dirs))
	for i, dir := range dirs {
		jars[i] = filepath.Join(dir, rel)
	}
	return jars
}

// Firestore is a running Firestore emulator.
type Firestore struct {
	// Host is "127.0.0.1:PORT", the value for FIRESTORE_EMULATOR_HOST.
	Host string
	proc *process
}

// FirestoreJar finds the emulator jar: $KITEFN_FIRESTORE_EMULATOR_JAR if set, else the file the Debian package
// google-cloud-cli-firestore-emulator installed, else a well-known Cloud SDK path.
func FirestoreJar() (string, error) {
	if jar := os.Getenv(FirestoreJarEnv); jar != "" {
		if !fileExists(jar) {
			return "", fmt.Errorf("firestore emulator: %s=%s, but there is no such file", FirestoreJarEnv, jar)
		}
		return jar, nil
	}
	tried := []string{"dpkg -L " + firestorePackage}
	if out, err := exec.Command("dpkg", "-L", firestorePackage).Output(); err == nil {
		for line := range strings.Lines(string(out)) {
			if jar := strings.TrimSpace(line); strings.HasSuffix(jar, "/cloud-firestore-emulator.jar") && fileExists(jar) {
				return jar, nil
			}
		}
	}
	for _, jar := range wellKnownFirestoreJars() {
		if fileExists(jar) {
			return jar, nil
		}
		tried = append(tried, jar)
	}
	return "", fmt.Errorf("firestore emulator: cloud-firestore-emulator.jar not found (tried %s). It comes from the "+
		"Debian package %s (from Google's Cloud SDK apt repository, which this machine cannot reach: it was "+
		"preinstalled and cannot be reinstalled from here); or point %s at a copy of the jar",
		strings.Join(tried, ", "), firestorePackage, FirestoreJarEnv)
}

// javaBinary finds java: $JAVA_HOME/bin/java, else java on PATH.
func javaBinary() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		if bin := filepath.Join(home, "bin", "java"); fileExists(bin) {
			return bin, nil
		}
	}
	bin, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("firestore emulator: java not found on PATH (nor in $JAVA_HOME/bin); the emulator " +
			"needs a Java 11+ runtime: apt-get install openjdk-17-jre-headless")
	}
	return bin, nil
}

// StartFirestore starts the Firestore emulator on a free loopback port and waits until it answers HTTP. It
// returns an error naming what is missing if java or the emulator jar is not installed.
func StartFirestore(ctx context.Context) (*Firestore, error) {
	jar, err := FirestoreJar()
	if err != nil {
		return nil, err
	}
	java, err := javaBinary()
	if err != nil {
		return nil, err
	}
	ctx, cancel := withStartTimeout(ctx)
	defer cancel()

	var lastErr error
	for range 3 { // a free port can be taken before the emulator binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		host := loopback(port)
		proc, err := startProcess("firestore emulator", &tailBuffer{}, java,
			"-Duser.language=en", "-cp", jar, firestoreMain, "--host=127.0.0.1", fmt.Sprintf("--port=%d", port))
		if err != nil {
			return nil, err
		}
		err = proc.waitReady(ctx, func(ctx context.Context) error { return probeFirestore(ctx, host) })
		if err == nil {
			return &Firestore{Host: host, proc: proc}, nil
		}
		_ = proc.Stop()
		lastErr = err
		if ctx.Err() != nil || !strings.Contains(proc.out.String(), "already in use") {
			break
		}
	}
	return nil, lastErr
}

// MustFirestore starts the emulator for one test and stops it when the test ends; it fails t if the emulator
// cannot start. Tests that share one emulator should call StartFirestore from TestMain instead.
func MustFirestore(t testing.TB) *Firestore {
	t.Helper()
	f, err := StartFirestore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Stop(); err != nil {
			t.Error(err)
		}
	})
	return f
}

// probeFirestore succeeds once the emulator's HTTP endpoint answers 200 ("Ok").
func probeFirestore(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET / answered %s", resp.Status)
	}
	return nil
}

// Reset deletes every document of project's default database.
func (f *Firestore) Reset(ctx context.Context, project string) error {
	u := fmt.Sprintf("http://%s/emulator/v1/projects/%s/databases/(default)/documents", f.Host, url.PathEscape(project))
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("firestore emulator: reset %s: %w", project, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("firestore emulator: reset %s: %s: %s", project, resp.Status, body)
	}
	return nil
}

// Output returns the tail of the emulator's log, for diagnosing a failing test.
func (f *Firestore) Output() string { return f.proc.out.String() }

// Stop ends the emulator; its data is lost. It is safe to call twice.
func (f *Firestore) Stop() error {
	if f == nil || f.proc == nil {
		return errors.New("firestore emulator: not started")
	}
	return f.proc.Stop()
}
