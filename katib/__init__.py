"""Katib tuning (``kubeline.katib``): Experiment objects for the train step, a cluster runner, a local tuner."""
