"""What the running service tells about itself: its metrics, in Prometheus' text format, and
whether it is ready. Fed by the composition root with what the engine and expiry scans did.
"""

from scheduler.monitoring.metrics import Metrics
from scheduler.monitoring.monitor import Monitor

__all__ = ["Metrics", "Monitor"]
