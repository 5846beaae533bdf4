"""The console's screens, one per task: dashboard, builds, environments, access, configuration
and logs (each a mode of the app, keeping its state while another is shown), plus the build
log viewer pushed over them."""
