"""Demo data and models: a synthetic news site, a MovieLens importer, and the trainer
that publishes ``mf``, ``click_model``, ``staff_picks`` and ``popularity`` to a store."""

from models.demo.feedback import simulate_feedback
from models.demo.movielens import read_movielens
from models.demo.synthetic import CATEGORIES, generate_news_dataset
from models.demo.train import DEMO_MODELS, demo_train, split_last_click, train_demo_models
from models.training.dataset import InteractionData

__all__ = [
    "CATEGORIES",
    "DEMO_MODELS",
    "InteractionData",
    "demo_train",
    "generate_news_dataset",
    "read_movielens",
    "simulate_feedback",
    "split_last_click",
    "train_demo_models",
]
