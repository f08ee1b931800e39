"""Keeping a served model healthy: canary analysis, rollback, alerting rules and the alert webhook."""
