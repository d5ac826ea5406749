package harness

import (
	"net"
	"strconv"
	"sync/atomic"
	"testing"
)

// TestStartRetriesLostPortRace hands etcd and the apiserver a port someone else holds on their first try:
// both must notice "address already in use" and start on new ports.
func TestStartRetriesLostPortRace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the apiserver twice (~7 s)")
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().(*net.TCPAddr).Port

	var calls atomic.Int32
	pickPorts = func(n int) ([]int, error) {
		ports, err := freePorts(n)
		if err == nil && calls.Add(1) <= 2 { // first etcd try, first apiserver try
			ports[0] = taken
		}
		return ports, err
	}
	defer func() { pickPorts = freePorts }()

	c := MustStart(t)
	if got := calls.Load(); got != 4 {
		t.Errorf("port picks = %d, want 4 (two lost races, two wins)", got)
	}
	if c.EtcdURL == "http://127.0.0.1:"+strconv.Itoa(taken) || c.URL == "https://127.0.0.1:"+strconv.Itoa(taken) {
		t.Errorf("cluster uses the held port %d: etcd %s, apiserver %s", taken, c.EtcdURL, c.URL)
	}
	t.Logf("started in %s after two lost port races", c.StartDuration)
}
