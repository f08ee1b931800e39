"""Katib tuning: Experiment objects for the train step and the trial entrypoint (kubeline.tuning)."""
