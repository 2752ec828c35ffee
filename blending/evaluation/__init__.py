"""Measuring blends: online experiment statistics (``stats``) and the reports built
from them (``experiment_reports``), and offline ranking metrics (``offline``).
Plain functions over counts and lists; numpy and scipy only."""
