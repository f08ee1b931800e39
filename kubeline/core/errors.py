"""The error a user can fix: it names the field and says what to do."""


class InvalidInputError(ValueError):
    """Bad data, config or request. The message names the field, the problem and the fix."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. Fix: {fix}")


class ServiceUnavailableError(RuntimeError):
    """A service (tracking server, storage) stayed unreachable through the retries."""

    def __init__(self, service: str, detail: str, consequence: str):
        self.service, self.detail = service, detail
        super().__init__(f"{service} is unavailable: {detail}. {consequence}")

    def saying(self, consequence: str) -> "ServiceUnavailableError":
        """The same outage, with what it means for the caller's operation."""
        return ServiceUnavailableError(self.service, self.detail, consequence)


class OperationFailedError(RuntimeError):
    """A long-running operation (a tuning Experiment, a rollout) ended in failure; the message says how."""
