// Package deploy holds no code. Its tests hold the deployment material in this directory (the
// Kubernetes manifests under kubernetes/, the JetStream definitions under nats/, and the
// repository's Dockerfile) to what the worker actually reads, serves and creates, so that the
// files cannot drift from the code unnoticed.
//
// It is a module of its own, beside the repository's, so that the Kubernetes libraries its tests
// decode and build the manifests with are not dependencies of the worker's module; a replace
// directive points it at the repository's module, whose internal packages it imports.
package deploy
