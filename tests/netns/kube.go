package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// ServiceSpec describes a Service whose one endpoint is an address inside a namespace of this package.
type ServiceSpec struct {
	Namespace string
	Name      string
	// Port is the Service port; TargetPort where the server listens (0: the same).
	Port       int32
	TargetPort int32
	PortName   string
	// Type defaults to ClusterIP. A LoadBalancer gets LoadBalancerIP as its status address when set.
	Type           corev1.ServiceType
	LoadBalancerIP string
	Labels         map[string]string
}

// Expose makes a server at addr reachable through the kube-apiserver's service proxy
// (/api/v1/namespaces/NS/services/NAME:PORT/proxy/…), as measured with kube-apiserver 1.37:
//
//   - endpoints may not be loopback addresses, hence the network namespace;
//   - the proxy takes only EndpointSlice endpoints that are not unready, whose targetRef is a Pod of the
//     Service's namespace, and whose address is in that Pod's status.podIPs (no node, no kubelet and no
//     Ready condition needed: a Pending pod whose status was patched will do);
//   - the Service has no selector, and the slice is labelled kubernetes.io/service-name; the slice port's name
//     must equal the Service port's name ("" included: nil does not match).
//
// It creates the namespace when missing (never deletes it: without a namespace controller it would stay
// Terminating) and returns a function that deletes the Pod, the EndpointSlice and the Service and waits until
// they are gone.
func Expose(ctx context.Context, cs kubernetes.Interface, addr netip.Addr, spec ServiceSpec) (func(context.Context) error, error) {
	if spec.TargetPort == 0 {
		spec.TargetPort = spec.Port
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	ns := spec.Namespace
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	podName := spec.Name + "-0"
	cleanup := func(ctx context.Context) error {
		var errs []error
		del := func(kind string, fn func() error, get func() error) {
			if err := fn(); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting %s %s/%s: %w", kind, ns, spec.Name, err))
				return
			}
			for {
				err := get()
				if apierrors.IsNotFound(err) {
					return
				}
				select {
				case <-ctx.Done():
					errs = append(errs, fmt.Errorf("%s %s/%s still there: %w", kind, ns, spec.Name, ctx.Err()))
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		del("Service", func() error {
			return cs.CoreV1().Services(ns).Delete(ctx, spec.Name, metav1.DeleteOptions{})
		}, func() error {
			_, err := cs.CoreV1().Services(ns).Get(ctx, spec.Name, metav1.GetOptions{})
			return err
		})
		del("EndpointSlice", func() error {
			return cs.DiscoveryV1().EndpointSlices(ns).Delete(ctx, spec.Name, metav1.DeleteOptions{})
		}, func() error {
			_, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, spec.Name, metav1.GetOptions{})
			return err
		})
		del("Pod", func() error {
			return cs.CoreV1().Pods(ns).Delete(ctx, podName, metav1.DeleteOptions{})
		}, func() error {
			_, err := cs.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
			return err
		})
		return errors.Join(errs...)
	}
	fail := func(err error) (func(context.Context) error, error) {
		return nil, errors.Join(err, cleanup(context.WithoutCancel(ctx)))
	}

	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Labels: map[string]string{"kitefn.dev/test-backend": spec.Name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "test.invalid/server"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fail(fmt.Errorf("creating pod %s/%s: %w", ns, podName, err))
	}
	pod.Status.PodIP = addr.String()
	pod.Status.PodIPs = []corev1.PodIP{{IP: addr.String()}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return fail(fmt.Errorf("setting the IP of pod %s/%s: %w", ns, podName, err))
	}
	ready := true
	portName, targetPort := spec.PortName, spec.TargetPort
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: spec.Name, Labels: map[string]string{discoveryv1.LabelServiceName: spec.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{addr.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: podName, UID: pod.UID},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &targetPort}},
	}, metav1.CreateOptions{}); err != nil {
		return fail(fmt.Errorf("creating endpoint slice %s/%s: %w", ns, spec.Name, err))
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: spec.Labels},
		Spec: corev1.ServiceSpec{Type: spec.Type, Ports: []corev1.ServicePort{{
			Name: spec.PortName, Port: spec.Port, TargetPort: intstr.FromInt32(spec.TargetPort),
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fail(fmt.Errorf("creating service %s/%s: %w", ns, spec.Name, err))
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.LoadBalancerIP != "" {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: spec.LoadBalancerIP}}
		if _, err := cs.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return fail(fmt.Errorf("setting the load balancer address of %s/%s: %w", ns, spec.Name, err))
		}
	}
	return cleanup, nil
}

// WaitProxied polls path through the service proxy until it answers 2xx: the apiserver reads EndpointSlices
// from an informer, so a slice just created may not be seen at once.
func WaitProxied(ctx context.Context, cs kubernetes.Interface, namespace, service string, port int32, path string) error {
	abs := "/api/v1/namespaces/" + namespace + "/services/" + service + ":" + strconv.Itoa(int(port)) + "/proxy" + path
	var last error
	for {
		_, last = cs.CoreV1().RESTClient().Get().AbsPath(abs).DoRaw(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s never answered: %w (last: %v)", abs, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
