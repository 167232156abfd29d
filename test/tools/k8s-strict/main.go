// k8s-strict reads rendered manifests (multi-document YAML on stdin) and decodes each one
// strictly into its Kubernetes or Prometheus Operator Go type: an unknown or misspelt
// field, a duplicate field or a wrong type is an error. It also applies the API server's
// name, label, port-name and ConfigMap-key rules. Prints one JSON report; exits 1 on any
// problem.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

type object struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

type report struct {
	Objects  []object `json:"objects"`
	Problems []string `json:"problems"`
}

func newFor(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	}
	return nil
}

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rep := report{Objects: []object{}, Problems: []string{}}
	bad := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	for _, doc := range splitDocuments(in) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			bad("document does not parse: %v", err)
			continue
		}
		if head.Kind == "" {
			continue
		}
		id := head.Kind + "/" + head.Metadata.Name
		rep.Objects = append(rep.Objects, object{Kind: head.Kind, Name: head.Metadata.Name})
		target := newFor(head.APIVersion, head.Kind)
		if target == nil {
			bad("%s: no type known for %s %s", id, head.APIVersion, head.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, target); err != nil {
			bad("%s: %v", id, err)
			continue
		}
		checkObject(id, target, bad)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
	if len(rep.Problems) > 0 {
		os.Exit(1)
	}
}

func splitDocuments(in []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(append([]byte("\n"), in...), []byte("\n---")) {
		if len(bytes.TrimSpace(part)) > 0 {
			out = append(out, part)
		}
	}
	return out
}

func checkLabels(id string, labels map[string]string, bad func(string, ...any)) {
	for k, v := range labels {
		for _, e := range validation.IsQualifiedName(k) {
			bad("%s: label key %q: %s", id, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			bad("%s: label %q value %q: %s", id, k, v, e)
		}
	}
}

func checkAnnotations(id string, ann map[string]string, bad func(string, ...any)) {
	for k := range ann {
		for _, e := range validation.IsQualifiedName(strings.ToLower(k)) {
			bad("%s: annotation key %q: %s", id, k, e)
		}
	}
}

func checkPodSpec(id string, spec *corev1.PodSpec, bad func(string, ...any)) {
	for _, c := range spec.Containers {
		if len(validation.IsDNS1123Label(c.Name)) > 0 {
			bad("%s: container name %q", id, c.Name)
		}
		seen := map[string]bool{}
		for _, p := range c.Ports {
			for _, e := range validation.IsValidPortName(p.Name) {
				bad("%s: port name %q: %s", id, p.Name, e)
			}
			for _, e := range validation.IsValidPortNum(int(p.ContainerPort)) {
				bad("%s: port %d: %s", id, p.ContainerPort, e)
			}
			key := fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
			if seen[key] {
				bad("%s: duplicate container port %s", id, key)
			}
			seen[key] = true
			if spec.HostNetwork && p.HostPort != 0 && p.HostPort != p.ContainerPort {
				bad("%s: hostNetwork needs hostPort == containerPort (%d != %d)", id, p.HostPort, p.ContainerPort)
			}
		}
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if mounts[m.MountPath] {
				bad("%s: two mounts at %s", id, m.MountPath)
			}
			mounts[m.MountPath] = true
			found := false
			for _, v := range spec.Volumes {
				found = found || v.Name == m.Name
			}
			if !found {
				bad("%s: mount %q names no volume", id, m.Name)
			}
		}
		for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if probe != nil && probe.HTTPGet != nil && probe.HTTPGet.Port.StrVal != "" {
				ok := false
				for _, p := range c.Ports {
					ok = ok || p.Name == probe.HTTPGet.Port.StrVal
				}
				if !ok {
					bad("%s: probe port %q is not a container port", id, probe.HTTPGet.Port.StrVal)
				}
			}
		}
	}
	if spec.HostNetwork && spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		bad("%s: hostNetwork without dnsPolicy ClusterFirstWithHostNet", id)
	}
}

func checkObject(id string, obj any, bad func(string, ...any)) {
	type meta interface {
		GetName() string
		GetLabels() map[string]string
		GetAnnotations() map[string]string
	}
	if m, ok := obj.(meta); ok {
		for _, e := range validation.IsDNS1123Subdomain(m.GetName()) {
			bad("%s: name: %s", id, e)
		}
		checkLabels(id, m.GetLabels(), bad)
		checkAnnotations(id, m.GetAnnotations(), bad)
	}
	switch o := obj.(type) {
	case *appsv1.DaemonSet:
		checkLabels(id, o.Spec.Template.Labels, bad)
		if o.Spec.Selector == nil {
			bad("%s: no selector", id)
		} else {
			for k, v := range o.Spec.Selector.MatchLabels {
				if o.Spec.Template.Labels[k] != v {
					bad("%s: selector %s=%s does not match the pod template", id, k, v)
				}
			}
		}
		checkPodSpec(id, &o.Spec.Template.Spec, bad)
	case *corev1.Service:
		for _, e := range validation.IsDNS1035Label(o.Name) {
			bad("%s: Service name: %s", id, e)
		}
		for _, p := range o.Spec.Ports {
			for _, e := range validation.IsValidPortName(p.Name) {
				bad("%s: port name %q: %s", id, p.Name, e)
			}
		}
	case *corev1.ConfigMap:
		for k := range o.Data {
			for _, e := range validation.IsConfigMapKey(k) {
				bad("%s: data key %q: %s", id, k, e)
			}
		}
	case *corev1.Secret:
		for k := range o.StringData {
			for _, e := range validation.IsConfigMapKey(k) {
				bad("%s: stringData key %q: %s", id, k, e)
			}
		}
	case *monitoringv1.PrometheusRule:
		names := map[string]bool{}
		for _, g := range o.Spec.Groups {
			if names[g.Name] {
				bad("%s: duplicate rule group %q", id, g.Name)
			}
			names[g.Name] = true
			for _, r := range g.Rules {
				if (r.Alert == "") == (r.Record == "") {
					bad("%s: group %q: a rule needs exactly one of alert and record", id, g.Name)
				}
				if r.Expr.String() == "" {
					bad("%s: group %q: rule %q has no expr", id, g.Name, r.Alert+r.Record)
				}
			}
		}
	}
}
