"""memgaze: personalized image memorability and gaze prediction, from training to the edge."""

__version__ = "0.1.0"
