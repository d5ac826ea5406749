package deploy_test

import (
	"context"
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/eventing/pkg/apis/feature"
	"knative.dev/pkg/apis"
	servingconfig "knative.dev/serving/pkg/apis/config"
	asconfig "knative.dev/serving/pkg/autoscaler/config"
)

// cluster is the Knative configuration an install is documented to need (README, "Deploy to Knative"): data of the
// knative-serving ConfigMaps config-defaults and config-features. Empty means a stock installation.
type cluster struct {
	defaults map[string]string
	features map[string]string
}

// with returns a copy of c with one config-defaults entry set.
func (c cluster) with(key, value string) cluster {
	d := maps.Clone(c.defaults)
	if d == nil {
		d = map[string]string{}
	}
	d[key] = value
	return cluster{defaults: d, features: c.features}
}

// context is what the Knative webhooks validate a create with, built from c the way their ConfigMap
// watchers build it: serving defaults, features and autoscaler settings, and eventing's feature flags (whose
// defaults matter: DeliverySpec.timeout is refused unless delivery-timeout is in the context).
func (c cluster) context() (context.Context, error) {
	defaults, err := servingconfig.NewDefaultsConfigFromMap(c.defaults)
	if err != nil {
		return nil, fmt.Errorf("config-defaults: %w", err)
	}
	features, err := servingconfig.NewFeaturesConfigFromMap(c.features)
	if err != nil {
		return nil, fmt.Errorf("config-features: %w", err)
	}
	autoscaler, err := asconfig.NewConfigFromMap(map[string]string{})
	if err != nil {
		return nil, err
	}
	flags, err := feature.NewFlagsConfigFromMap(map[string]string{})
	if err != nil {
		return nil, err
	}
	ctx := apis.WithinCreate(context.Background())
	ctx = servingconfig.ToContext(ctx, &servingconfig.Config{Defaults: defaults, Features: features,
		Autoscaler: autoscaler})
	return feature.ToContext(ctx, flags), nil
}

type knativeResource interface {
	runtime.Object
	apis.Defaultable
	apis.Validatable
}

// validateKnative runs every Knative object through its own SetDefaults and Validate, as the admission
// webhooks do, and keeps error-level findings (warnings, such as deprecations, are normal). It works on
// copies: the design checks look at what the manifests say, before defaults.
func validateKnative(ctx context.Context, in *install) []error {
	var errs []error
	for _, o := range in.Objects {
		r, ok := o.Value.(knativeResource)
		if !ok {
			continue
		}
		r = r.DeepCopyObject().(knativeResource)
		r.SetDefaults(ctx)
		if fe := r.Validate(ctx).Filter(apis.ErrorLevel); fe != nil {
			errs = append(errs, fmt.Errorf("%s: Knative validation: %v", o, fe))
		}
	}
	return errs
}
