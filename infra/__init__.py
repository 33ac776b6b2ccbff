"""fti infra: the embedded broker launcher and deployment files (Prometheus, Grafana, manifests)."""
