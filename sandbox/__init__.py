"""Faithful local stand-ins for GitHub, git, the registry and Kubernetes."""
