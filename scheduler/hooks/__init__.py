"""The Taskcluster hooks this deployment manages: their definitions (pure), the `hooks/` folder
on disk, plans against the deployment, trigger payloads, and the Hooks service calls."""
