"""The rollback step's settings (kubeline.operate.rollback)."""
from kubeline.operate.rollback import RollbackConfig

CONFIG = RollbackConfig
