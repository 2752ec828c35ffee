"""Measuring blends online: experiment statistics (``stats``) and the reports built
from them (``experiment_reports``); the offline ranking metrics are
``models.metrics``. Plain functions over counts; numpy and scipy only."""
