"""The service configuration: its schema and resolved model (pure), and loading it from YAML,
files and the environment (`loading`), the one place that reads them.
"""
