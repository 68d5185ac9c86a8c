"""Supernet training: strategies (sandwich rule, progressive shrinking), losses and the loop."""

from supernets.training.loop import average_gradients, cosine_lr, scheduled_lr, train_steps
from supernets.training.strategies import STRATEGIES, ProgressiveShrinking, SandwichRule, Stage, TrainingStrategy

__all__ = ["STRATEGIES", "ProgressiveShrinking", "SandwichRule", "Stage", "TrainingStrategy", "average_gradients",
           "cosine_lr", "scheduled_lr", "train_steps"]
