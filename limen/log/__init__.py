"""Log: analysis and plots of a finished study."""

from limen.log.log import Log, Progress

__all__ = ["Log", "Progress"]
