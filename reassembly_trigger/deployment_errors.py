"""A deployment that cannot work, told apart from a job that failed.

A permission the role lacks, a table, index or queue that does not exist (a wrong
name, or the right name in the wrong region), credentials AWS refuses: no job can
succeed until someone fixes the deployment, and each job that met it fails with an AWS
error (`aws_error`, its `error_code` and `operation` on the outcome's last transition).
Reported as per-job `batchItemFailures`, those failures are lost to a mapping without
`ReportBatchItemFailures` (it counts the batch as processed), and the jobs are never
triggered. So the stream handler and the reconciler raise `DeploymentMisconfigured`
instead: one function error naming each missing action and resource, which every
mapping retries (the records stay on the stream) and the Errors alarm sees.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reassembly_trigger.errors import ReassemblyTriggerError
from reassembly_trigger.machine import FailReason
from reassembly_trigger.outcome import JobOutcome
from reassembly_trigger.settings import Settings


class Problem(StrEnum):
    """What is wrong with the deployment."""

    PERMISSION = "permission"
    MISSING = "missing"
    CREDENTIALS = "credentials"


#: AWS error codes that say the deployment is wrong, whatever the job.
PERMISSION_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "KMSAccessDeniedException", "KMS.AccessDenied"}
)
MISSING_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        # SQS: a queue URL of another region (or account) than the client's endpoint.
        "InvalidAddress",
    }
)
CREDENTIAL_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId"})
#: DynamoDB's message for a Query on an index the table does not have.
_NO_SUCH_INDEX = "specified index"
#: IAM's denial names the action and the resource: "...is not authorized to perform:
#: dynamodb:BatchGetItem on resource: arn:aws:dynamodb:...:table/jobs because ...".
_DENIED = re.compile(r"perform: (?P<action>\S+) on resource: (?P<resource>\S+)")
#: Each call the code makes, and the setting that names its resource.
_SQS_OPERATIONS = frozenset({"SendMessage"})


@dataclass(frozen=True, slots=True)
class Misconfiguration:
    """One thing the deployment lacks, as an operator fixes it."""

    problem: Problem
    action: str
    resource: str
    error_code: str
    jobs: int = 1

    def describe(self) -> str:
        """One line: what is missing, on what, and what AWS answered."""
        seen = f"{self.error_code} on {self.action.split(':')[-1]}, {self.jobs} job(s)"
        if self.problem is Problem.PERMISSION:
            return f"the role lacks {self.action} on {self.resource} ({seen})"
        if self.problem is Problem.MISSING:
            return (
                f"{self.resource} does not exist, or not in this region ({seen}): "
                f"{self.action} cannot succeed"
            )
        return f"AWS refused the function's credentials for {self.action} ({seen})"


class DeploymentMisconfigured(ReassemblyTriggerError):
    """The deployment, not a job, is wrong: raised so the whole invocation fails."""

    def __init__(self, problems: Sequence[Misconfiguration]) -> None:
        self.problems = list(problems)
        super().__init__(
            "deployment misconfigured, no job can be triggered until it is fixed "
            "(the records are retried): " + "; ".join(p.describe() for p in self.problems)
        )


def _named_resource(operation: str, settings: Settings, message: str) -> str:
    """The resource a failed call was about, from the settings that name it."""
    if operation in _SQS_OPERATIONS:
        return f"queue {settings.reassembly_queue_url} (REASSEMBLY_QUEUE_URL)"
    if _NO_SUCH_INDEX in message:
        return (
            f"index {settings.jobs_status_index_name} (JOBS_STATUS_INDEX_NAME) of table "
            f"{settings.jobs_table_name}"
        )
    table, variable = {
        "BatchGetItem": (settings.jobs_table_name, "JOBS_TABLE_NAME"),
        "Query": (settings.segment_completions_table_name, "SEGMENT_COMPLETIONS_TABLE_NAME"),
    }.get(operation, (settings.reassembly_triggered_table_name, "REASSEMBLY_TRIGGERED_TABLE_NAME"))
    return f"table {table} ({variable})"


def classify(
    error_code: str, operation: str, message: str, settings: Settings
) -> Misconfiguration | None:
    """The misconfiguration an AWS error shows, or None when it may be the job's own."""
    service = "sqs" if operation in _SQS_OPERATIONS else "dynamodb"
    action = f"{service}:{operation}"
    if error_code in PERMISSION_CODES:
        denied = _DENIED.search(message)
        if denied:
            return Misconfiguration(
                Problem.PERMISSION, denied["action"], denied["resource"], error_code
            )
        resource = _named_resource(operation, settings, message)
        return Misconfiguration(Problem.PERMISSION, action, resource, error_code)
    missing_index = error_code == "ValidationException" and _NO_SUCH_INDEX in message
    if error_code in MISSING_CODES or missing_index:
        resource = _named_resource(operation, settings, message)
        return Misconfiguration(Problem.MISSING, action, resource, error_code)
    if error_code in CREDENTIAL_CODES:
        return Misconfiguration(Problem.CREDENTIALS, action, "*", error_code)
    return None


def misconfigurations(outcomes: Iterable[JobOutcome], settings: Settings) -> list[Misconfiguration]:
    """What the failed jobs' AWS errors say is wrong with the deployment, each once
    (with how many jobs met it), in the order first met."""
    found: dict[tuple[Problem, str, str], Misconfiguration] = {}
    jobs: Counter[tuple[Problem, str, str]] = Counter()
    for outcome in outcomes:
        if not outcome.failed or outcome.reason is not FailReason.AWS_ERROR:
            continue
        details = outcome.details
        seen = classify(
            str(details.get("error_code", "")),
            str(details.get("operation", "")),
            str(details.get("error", "")),
            settings,
        )
        if seen is not None:
            key = (seen.problem, seen.action, seen.resource)
            found.setdefault(key, seen)
            jobs[key] += 1
    return [
        Misconfiguration(m.problem, m.action, m.resource, m.error_code, jobs[key])
        for key, m in found.items()
    ]


def raise_if_misconfigured(outcomes: Iterable[JobOutcome], settings: Settings) -> None:
    """Raise DeploymentMisconfigured when any failed job met a misconfiguration."""
    problems = misconfigurations(outcomes, settings)
    if problems:
        raise DeploymentMisconfigured(problems)
