package graph

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
)

// ClusterLister reads straight from the cluster: full objects through the dynamic client, metadata-only lists
// through the metadata client. Lists are unpaged: an apiserver with consistent reads from its cache (1.31+)
// answers them from memory.
type ClusterLister struct {
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
}

var _ Lister = ClusterLister{}

// List lists q in one call.
func (l ClusterLister) List(ctx context.Context, q Query) ([]*unstructured.Unstructured, error) {
	opts := metav1.ListOptions{LabelSelector: q.LabelSelector, FieldSelector: q.FieldSelector}
	if q.MetadataOnly {
		list, err := l.Metadata.Resource(q.GVR).Namespace(q.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", resourceName(q.GVR), err)
		}
		out := make([]*unstructured.Unstructured, 0, len(list.Items))
		for i := range list.Items {
			item := &list.Items[i]
			content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&item.ObjectMeta)
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", resourceName(q.GVR), err)
			}
			u := &unstructured.Unstructured{Object: map[string]any{"metadata": content}}
			u.SetGroupVersionKind(q.GVR.GroupVersion().WithKind(q.Kind))
			out = append(out, u)
		}
		return out, nil
	}
	list, err := l.Dynamic.Resource(q.GVR).Namespace(q.Namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", resourceName(q.GVR), err)
	}
	out := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
		if out[i].GetKind() == "" {
			out[i].SetGroupVersionKind(q.GVR.GroupVersion().WithKind(q.Kind))
		}
	}
	return out, nil
}

// Get reads one object.
func (l ClusterLister) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace,
	name string) (*unstructured.Unstructured, error) {
	x, err := l.Dynamic.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", resourceName(gvr), name, err)
	}
	return x, nil
}
