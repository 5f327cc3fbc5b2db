"""What a change to a callback task can run into, with the stable ids the API shows.

    TaskError
    ├── TaskNotFound       no such task                                  (404 task-not-found)
    ├── TaskConflict       another agent holds it                        (409 task-already-claimed)
    ├── TaskNotAllowed     this actor may not do that to it              (403 task-not-allowed)
    ├── TaskNotClaimed     open, but the change needs a holder           (409 task-not-claimed)
    └── TaskClosed         resolved or cancelled: nothing more to change (409 task-closed)

The router maps them to HTTP by `status` and `code`; campaigns knows nothing of HTTP beyond
these two numbers-as-data.
"""


class TaskError(Exception):
    status = 400
    code = "task-error"

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.message = message


class TaskNotFound(TaskError):
    status = 404
    code = "task-not-found"

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id, f"there is no callback task {task_id}")


class TaskConflict(TaskError):
    """Someone else claimed it first: `holder` is who holds it now."""

    status = 409
    code = "task-already-claimed"

    def __init__(self, task_id: str, holder: str | None) -> None:
        super().__init__(task_id, f"task {task_id} was already claimed by {holder}")
        self.holder = holder


class TaskNotAllowed(TaskError):
    status = 403
    code = "task-not-allowed"


class TaskClosed(TaskError):
    status = 409
    code = "task-closed"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(task_id, f"task {task_id} is {status}: it cannot change any more")
        self.task_status = status


class TaskNotClaimed(TaskError):
    """Open, where the change needs a task someone holds (release, or resolve by an agent)."""

    status = 409
    code = "task-not-claimed"

    def __init__(self, task_id: str, action: str) -> None:
        super().__init__(task_id, f"task {task_id} is open: claim it before you {action} it")
