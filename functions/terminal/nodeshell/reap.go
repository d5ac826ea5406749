package nodeshell

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// StaleAfter is how many heartbeat intervals a pod may go unrenewed before the reaper deletes it.
const StaleAfter = 3

// Reap deletes the node-shell pods no live session vouches for — whichever instance made them: a heartbeat
// older than StaleAfter intervals (or none, and the pod that old), or a pod that has ended (its deadline
// passed). It returns the names deleted. Each delete is conditional on the version listed, so a pod renewed
// meanwhile is kept.
func Reap(ctx context.Context, cs kubernetes.Interface, now time.Time, interval time.Duration) ([]string, error) {
	list, err := cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{LabelApp: AppName}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing node shell pods: %w", err)
	}
	var deleted []string
	var errs []error
	for i := range list.Items {
		p := &list.Items[i]
		if !stale(p, now, StaleAfter*interval) {
			continue
		}
		err := deletePod(ctx, cs, p.Name, &metav1.Preconditions{UID: &p.UID, ResourceVersion: &p.ResourceVersion})
		switch {
		case apierrors.IsConflict(err):
			// Renewed (or otherwise changed) since the list: the next pass judges it again.
		case err != nil:
			errs = append(errs, fmt.Errorf("deleting node shell pod %s: %w", p.Name, err))
		default:
			deleted = append(deleted, p.Name)
		}
	}
	return deleted, errors.Join(errs...)
}

func stale(p *corev1.Pod, now time.Time, after time.Duration) bool {
	if p.DeletionTimestamp != nil {
		return false // already going
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	if hb, err := time.Parse(time.RFC3339, p.Annotations[AnnotationHeartbeat]); err == nil {
		return now.Sub(hb) > after
	}
	return now.Sub(p.CreationTimestamp.Time) > after
}
