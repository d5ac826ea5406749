// Package nodeshell makes, keeps alive and cleans up the pods behind node shells: a privileged pod pinned to a
// node, sharing the host's namespaces, that a shell is exec'd into (ShellCommand). It knows Kubernetes only;
// sessions, sockets and roles are the terminal function's.
package nodeshell

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// Namespace holds every node-shell pod of every instance (the reaper looks only here).
	Namespace = "kitefn-node-shells"
	// DefaultImage is a small image with sh, nsenter and chroot, pinned to an exact tag.
	DefaultImage = "docker.io/library/busybox:1.37.0"
	// Container is the name of the pod's one container, the one to exec into.
	Container = "shell"

	// LabelApp marks node-shell pods; the reaper selects on it.
	LabelApp = "app.kubernetes.io/name"
	// AppName is LabelApp's value.
	AppName = "kitefn-node-shell"
	// LabelSession, LabelCaller and LabelInstance say which session, caller (label-safe form) and kitefn
	// instance made the pod.
	LabelSession  = "kitefn.dev/session"
	LabelCaller   = "kitefn.dev/caller"
	LabelInstance = "kitefn.dev/instance"
	// AnnotationCaller is the caller's name as is (labels cannot hold every name).
	AnnotationCaller = "kitefn.dev/caller"
	// AnnotationHeartbeat is the RFC 3339 time a live session last vouched for the pod.
	AnnotationHeartbeat = "kitefn.dev/heartbeat"

	// psaEnforce is Pod Security Admission's label: the namespace must allow privileged pods.
	psaEnforce = "pod-security.kubernetes.io/enforce"
)

// Options is how a shell pod is made.
type Options struct {
	// Image runs the pod (DefaultImage when empty); it needs sh, and nsenter or chroot.
	Image string
	// Session is the session's ID, a valid label value.
	Session string
	// Caller is who opened the session; its label-safe form goes in LabelCaller, the name as is in
	// AnnotationCaller.
	Caller string
	// Instance is the kitefn instance making the pod (label-safe form).
	Instance string
	// MaxAge becomes activeDeadlineSeconds: the kubelet kills the pod after it even if every kitefn instance
	// is gone (default 8h).
	MaxAge time.Duration
	// StartTimeout bounds Create's wait for Running (default 2m).
	StartTimeout time.Duration
	// Heartbeat is how often Shell.Heartbeat renews the annotation (default 30s).
	Heartbeat time.Duration
}

func (o Options) withDefaults() Options {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 8 * time.Hour
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 30 * time.Second
	}
	return o
}

func (o Options) validate() error {
	if o.Session == "" {
		return fmt.Errorf("node shell: no session ID")
	}
	if errs := validation.IsValidLabelValue(o.Session); len(errs) > 0 {
		return fmt.Errorf("node shell: session ID %q is not a label value: %s", o.Session, strings.Join(errs, "; "))
	}
	return nil
}

// shellScript enters the host: nsenter into PID 1's namespaces (mount, UTS, IPC, network, PID) when that
// works, else chroot into the host's / mounted at /host, else the container's own sh. Each way is tried with
// `true` first and then exec'd, so a user's shell exiting non-zero does not fall through to the next way.
// On the host, bash when it has one, else sh.
const shellScript = `shell='if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'
if nsenter -t 1 -m -u -i -n -p -- true 2>/dev/null; then exec nsenter -t 1 -m -u -i -n -p -- sh -c "$shell"; fi
if chroot /host true 2>/dev/null; then exec chroot /host sh -c "$shell"; fi
echo "kitefn: cannot enter the host (nsenter and chroot /host failed); this is the shell pod's own sh" >&2
exec sh`

// ShellCommand is the command to exec into the shell pod's container (with a TTY) for a shell on the host.
func ShellCommand() []string { return []string{"sh", "-c", shellScript} }

// sleepCommand keeps the container alive doing nothing: the shell is an exec into it. busybox's sleep takes
// whole seconds, so a loop rather than `sleep infinity`.
var sleepCommand = []string{"sh", "-c", "while true; do sleep 3600; done"}

// PodSpec is the shell pod for node (without a name: Create lets the apiserver pick one from GenerateName).
func PodSpec(node string, o Options, now time.Time) *corev1.Pod {
	o = o.withDefaults()
	yes := true
	no := false
	zero := int64(0)
	deadline := int64(o.MaxAge / time.Second)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: generateName(node),
			Namespace:    Namespace,
			Labels: map[string]string{
				LabelApp:                       AppName,
				"app.kubernetes.io/managed-by": "kitefn",
				LabelSession:                   o.Session,
				LabelCaller:                    LabelValue(o.Caller),
				LabelInstance:                  LabelValue(o.Instance),
			},
			Annotations: map[string]string{
				AnnotationCaller:    o.Caller,
				AnnotationHeartbeat: now.UTC().Format(time.RFC3339),
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostPID:                       true,
			HostNetwork:                   true,
			HostIPC:                       true,
			DNSPolicy:                     corev1.DNSClusterFirstWithHostNet,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &zero,
			// The shell acts as a person, not as a workload: no API credentials inside.
			AutomountServiceAccountToken: &no,
			EnableServiceLinks:           &no,
			Tolerations:                  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            Container,
				Image:           o.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         sleepCommand,
				SecurityContext: &corev1.SecurityContext{Privileged: &yes},
				VolumeMounts:    []corev1.VolumeMount{{Name: "host", MountPath: "/host"}},
			}},
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
}

var notLabelChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// LabelValue is s as a label value: s itself when it is one, else s with other characters replaced by '-',
// cut, and a hash of s appended so that two names do not share a value.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:4])
	clean := notLabelChars.ReplaceAllString(s, "-")
	if len(clean) > validation.LabelValueMaxLength-len(h)-1 {
		clean = clean[:validation.LabelValueMaxLength-len(h)-1]
	}
	clean = strings.Trim(clean, "-_.")
	if clean == "" {
		return h
	}
	return clean + "-" + h
}

// generateName is "shell-<node>-" with the node cut so that the apiserver's 5 random characters keep the
// name a valid DNS label (hostname-like names stay readable in `kubectl get pods`).
func generateName(node string) string {
	n := strings.ToLower(notLabelChars.ReplaceAllString(node, "-"))
	n = strings.ReplaceAll(n, "_", "-")
	n = strings.ReplaceAll(n, ".", "-")
	if len(n) > 40 {
		n = n[:40]
	}
	n = strings.Trim(n, "-")
	if n == "" {
		return "shell-"
	}
	return "shell-" + n + "-"
}
