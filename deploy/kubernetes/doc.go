// Package kubernetes holds fleetsim's Kubernetes manifests (the YAML files
// beside this one: the hub as a StatefulSet, the fleet as an Indexed Job)
// and the test that decodes them strictly into the Kubernetes API types and
// checks them against the fleetsim command's flags. It has no code of its
// own: the Kubernetes modules are needed by its test alone, so they never
// enter the fleetsim binary.
package kubernetes
