// Package deploy holds no code. Its tests hold the deployment material in this directory (the
// Kubernetes manifests under kubernetes/, the JetStream definitions under nats/, and the
// repository's Dockerfile) to what the worker actually reads, serves and creates, so that the
// files cannot drift from the code unnoticed.
package deploy
