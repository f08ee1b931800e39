"""The rollback step's settings (kubeline.rollback)."""
from kubeline.rollback import RollbackConfig

CONFIG = RollbackConfig
