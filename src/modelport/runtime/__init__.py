"""Where replicas run: `base` is the interface the control loop drives, `local` runs them as processes."""
