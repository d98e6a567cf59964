"""A Kubernetes API double for tests (see README.md): ``server.py`` serves it,
``fixtures.kube_double`` starts it for a test."""
