"""Contracts every layer shares: errors, settings, schema, storage, stored versions, the registry, profiles."""
