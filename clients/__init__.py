"""Clients for the outside world: GitHub, git, the OCI registry, image builds and Kubernetes.

They know nothing of Temporal, FastAPI or the database, so they are tested alone against the
stand-ins; the worker, the API and `doctor` build them from settings in one way each."""
