"""What happens when a task runs: resolving inputs, running the pod, reading outputs."""
