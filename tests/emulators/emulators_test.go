package emulators_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kitefn/kitefn/tests/emulators"
)

func TestFirestore(t *testing.T) {
	t.Parallel()
	start := time.Now()
	f, err := emulators.StartFirestore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("firestore emulator ready at %s after %v", f.Host, time.Since(start))
	if err := f.Reset(t.Context(), "kitefn-test"); err != nil {
		t.Errorf("Reset: %v", err)
	}
	if err := f.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	checkClosed(t, f.Host)
	if err := f.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestDynamoDB(t *testing.T) {
	t.Parallel()
	start := time.Now()
	d := emulators.MustDynamoDB(t)
	t.Logf("minidyn ready at %s after %v", d.Endpoint, time.Since(start))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, d.Endpoint+"/", strings.NewReader(`{"TableName":"nope"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.DescribeTable")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("DescribeTable of a missing table answered %s, want 400", resp.Status)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	u, _ := url.Parse(d.Endpoint)
	checkClosed(t, u.Host)
}

func TestFirestoreJarMissing(t *testing.T) {
	t.Setenv(emulators.FirestoreJarEnv, "/nonexistent/cloud-firestore-emulator.jar")
	_, err := emulators.StartFirestore(context.Background())
	if err == nil || !strings.Contains(err.Error(), emulators.FirestoreJarEnv) || !strings.Contains(err.Error(), "/nonexistent") {
		t.Fatalf("StartFirestore with a missing jar: %v", err)
	}
}

func TestJavaMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("JAVA_HOME", "")
	_, err := emulators.StartFirestore(context.Background())
	if err == nil || !strings.Contains(err.Error(), "java") || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("StartFirestore without java: %v", err)
	}
	t.Log(err)
}

func checkClosed(t *testing.T, host string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", host)
	}
}
