"""The Terraform module, read as data: what it deploys, what it grants, what it filters,
what it refuses, and what it plans when the zip is not built yet.

Every `.tf` file under terraform/ is parsed with python-hcl2; the stream filters are
evaluated against the contract's events with moto's implementation of AWS event
patterns, and the granted actions are compared with the boto3 calls the code makes.
The last section runs a real `terraform plan` (no AWS: fake credentials, no API call)
where Terraform and an AWS provider are installed locally; it is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from moto.events.models import EventPattern

from reassembly_trigger.local.invocations.records import stream_event
from reassembly_trigger.settings import (
    ENVIRONMENT_VARIABLES,
    REQUIRED_VARIABLES,
    Settings,
    SettingsError,
)
from reassembly_trigger.timing import LAMBDA_MAX_TIMEOUT_SECONDS, MIN_FUNCTION_TIMEOUT_SECONDS

from moto_fixtures import CONTRACT_EVENTS, CORE_FAIL_METRICS, CORE_SKIP_METRICS, Invoker

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "terraform"
#: Statements for what Lambda does with the function's role (not the code's own calls).
SERVICE_STATEMENTS = {"ReadTheStreams", "ListStreams", "ReportGivenUpBatches", "WriteOwnLogs"}

# What the module names of the code, written out (a rename must change this file too);
# test_the_written_out_names_are_the_codes_names ties each list to the code.
#: The variables both functions read, beyond today's settings.ENVIRONMENT_VARIABLES.
CORE_ENVIRONMENT = {
    "JOBS_TABLE_NAME",
    "SEGMENT_COMPLETIONS_TABLE_NAME",
    "REASSEMBLY_TRIGGERED_TABLE_NAME",
    "REASSEMBLY_QUEUE_URL",
    "LOCK_LEASE_SECONDS",
    "EVALUATION_CONCURRENCY",
    "METRICS_NAMESPACE",
    "LEASE_WAIT_SECONDS",
    "JOBS_STATUS_INDEX_NAME",
    "RECONCILE_MIN_AGE_SECONDS",
    "UNCLAIMED_AFTER_SECONDS",
}
#: The reconciler's AWS calls: statement sid -> (actions, resources).
RECONCILER_STATEMENTS = {
    "ReadJobs": (["dynamodb:BatchGetItem"], ["${var.jobs_table_arn}"]),
    "FindJobsInFlight": (
        ["dynamodb:Query"],
        ["${var.jobs_table_arn}/index/${var.jobs_status_index_name}"],
    ),
    "CountSegmentCompletions": (["dynamodb:Query"], ["${var.segment_completions_table_arn}"]),
    "HoldTheReassemblyLock": (
        ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        ["${var.reassembly_triggered_table_arn}"],
    ),
    "StartReassembly": (["sqs:SendMessage"], ["${var.reassembly_queue_arn}"]),
    "WriteOwnLogs": (
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        ["${aws_cloudwatch_log_group.reconciler.arn}:*"],
    ),
    "UseCustomerManagedKeys": (["kms:Decrypt", "kms:GenerateDataKey"], "${statement.value}"),
}
#: The stream function's and the reconciler's other EMF metrics.
CORE_STREAM_METRICS = {
    "Records",
    "MalformedRecords",
    "JobsEvaluated",
    "JobsEnqueued",
    "JobsSkipped",
    "JobsFailed",
    "InvocationDuration",
    *CORE_SKIP_METRICS,
    *CORE_FAIL_METRICS,
}
CORE_RECONCILER_METRICS = {
    "JobsExamined",
    "JobsEnqueued",
    "Unclaimed",
    "WaitingForSegments",
    "Truncated",
    "ReconcileDuration",
    *CORE_SKIP_METRICS,
    *CORE_FAIL_METRICS,
}
#: Resources that run the code or reference something that does: none without a zip.
GATED_ON_THE_ZIP = {
    ("aws_lambda_function", "trigger"),
    ("aws_lambda_function", "reconciler"),
    ("aws_lambda_alias", "live"),
    ("aws_lambda_alias", "live_jobs"),
    ("aws_lambda_alias", "reconciler_live"),
    ("aws_lambda_event_source_mapping", "segment_completions"),
    ("aws_lambda_event_source_mapping", "jobs"),
    ("aws_lambda_function_event_invoke_config", "reconciler"),
    ("aws_scheduler_schedule", "reconcile"),
    ("aws_iam_role", "schedule"),
    ("aws_iam_role_policy", "schedule"),
    ("aws_cloudwatch_metric_alarm", "iterator_age"),
    ("aws_cloudwatch_metric_alarm", "failed_jobs"),
    ("aws_cloudwatch_metric_alarm", "unexpected_errors"),
    ("aws_cloudwatch_metric_alarm", "deadline_failures"),
    ("aws_cloudwatch_metric_alarm", "function_errors"),
    ("aws_cloudwatch_metric_alarm", "function_throttles"),
    ("aws_cloudwatch_metric_alarm", "reconciler_enqueued"),
    ("aws_cloudwatch_metric_alarm", "unclaimed"),
    ("aws_cloudwatch_metric_alarm", "reconciler_truncated"),
    ("aws_cloudwatch_dashboard", "trigger"),
}
#: Resources of the stream function, its mappings and its queue: none without
#: stream_trigger_enabled (trigger on write alone, with the reconciler).
GATED_ON_THE_STREAM_TRIGGER = {
    ("aws_lambda_function", "trigger"),
    ("aws_lambda_alias", "live"),
    ("aws_lambda_alias", "live_jobs"),
    ("aws_lambda_event_source_mapping", "segment_completions"),
    ("aws_lambda_event_source_mapping", "jobs"),
    ("aws_iam_role", "trigger"),
    ("aws_iam_role_policy", "trigger"),
    ("aws_cloudwatch_log_group", "trigger"),
    ("aws_sqs_queue", "on_failure"),
    ("aws_cloudwatch_metric_alarm", "iterator_age"),
    ("aws_cloudwatch_metric_alarm", "on_failure_messages"),
    ("aws_cloudwatch_metric_alarm", "failed_jobs"),
    ("aws_cloudwatch_metric_alarm", "unexpected_errors"),
    ("aws_cloudwatch_metric_alarm", "deadline_failures"),
    ("aws_cloudwatch_metric_alarm", "function_throttles"),
}
#: The code's own calls (gateways.py), as a worker calling trigger_job needs them.
TRIGGER_JOB_STATEMENTS = {
    "ReadJobs": (["dynamodb:BatchGetItem"], ["${var.jobs_table_arn}"]),
    "CountSegmentCompletions": (["dynamodb:Query"], ["${var.segment_completions_table_arn}"]),
    "HoldTheReassemblyLock": (
        ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
        ["${var.reassembly_triggered_table_arn}"],
    ),
    "StartReassembly": (["sqs:SendMessage"], ["${var.reassembly_queue_arn}"]),
    "UseCustomerManagedKeys": (["kms:Decrypt", "kms:GenerateDataKey"], "${statement.value}"),
}


def plain(value: Any) -> Any:
    """python-hcl2's output without its bookkeeping: strings unquoted, no markers."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {
            plain(key): plain(item)
            for key, item in value.items()
            if key not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


@cache
def module() -> dict[str, Any]:
    """Every block of every .tf file: {"resource": {type: {name: body}}, "variable": ...};
    `moved` blocks as a list."""
    merged: dict[str, Any] = {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = plain(hcl2.load(handle))
        for kind, blocks in parsed.items():
            for block_ in blocks:
                if kind in ("resource", "data"):
                    for type_, named in block_.items():
                        merged.setdefault(kind, {}).setdefault(type_, {}).update(named)
                elif kind == "moved":
                    merged.setdefault(kind, []).append(block_)
                else:
                    merged.setdefault(kind, {}).update(block_)
    return merged


def resource(type_: str, name: str) -> dict[str, Any]:
    """One resource's body."""
    body: dict[str, Any] = module()["resource"][type_][name]
    return body


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a body."""
    (only,) = body[name]
    return dict(only)


def default(variable: str) -> Any:
    """A variable's default value."""
    return module()["variable"][variable].get("default")


def local(name: str) -> Any:
    """A local value as written (expressions as strings)."""
    return module()["locals"][name]


def validations(variable: str) -> list[dict[str, str]]:
    """A variable's validation blocks."""
    found: list[dict[str, str]] = module()["variable"][variable].get("validation", [])
    return found


def policy_statements(document_name: str) -> dict[str, dict[str, Any]]:
    """A policy document's statements by sid, dynamic ones included."""
    document = module()["data"]["aws_iam_policy_document"][document_name]
    statements = {s["sid"]: s for s in document["statement"]}
    for dynamic in document.get("dynamic", []):
        content = block(dynamic["statement"], "content")
        statements[content["sid"]] = content
    return statements


def function_statements() -> dict[str, dict[str, Any]]:
    """The stream function's policy statements by sid: the code's (trigger_job, its
    source document) and Lambda's on its behalf."""
    documents = module()["data"]["aws_iam_policy_document"]
    assert documents["trigger"]["source_policy_documents"] == [
        "${data.aws_iam_policy_document.trigger_job.json}"
    ]
    own = policy_statements("trigger")
    shared = policy_statements("trigger_job")
    assert not set(own) & set(shared), "a sid in both documents"
    return {**shared, **own}


def contract_records(name: str) -> list[dict[str, Any]]:
    """The records of one of the contract's sample events."""
    records: list[dict[str, Any]] = json.loads((CONTRACT_EVENTS / name).read_text())["Records"]
    return records


def alarm(name: str) -> dict[str, Any]:
    """One alarm resource's body."""
    return resource("aws_cloudwatch_metric_alarm", name)


# ------------------------------------------------------------------ layout and versions


def test_the_module_has_its_files_and_each_parses() -> None:
    """Each concern has its file, and python-hcl2 parses them all."""
    names = {path.name for path in MODULE.glob("*.tf")}
    assert {
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "iam.tf",
        "versions.tf",
        "reconciler.tf",
        "alarms.tf",
        "dashboard.tf",
        "checks.tf",
        "moved.tf",
    } <= names
    assert (MODULE / "README.md").is_file()
    assert module()["resource"]


def test_the_readme_example_passes_every_required_variable() -> None:
    """The README's example call sets every variable that has no default."""
    readme = (MODULE / "README.md").read_text()
    example = readme.split('module "reassembly_trigger" {', 1)[1].split("\n}\n", 1)[0]
    required = {name for name, spec in module()["variable"].items() if "default" not in spec}
    assert required
    assert {name for name in required if not re.search(rf"^\s*{name}\s*=", example, re.M)} == set()


def test_the_readme_example_builds_what_it_deploys() -> None:
    """Every runtime/architecture pair an example or build command in the README names is
    consistent: the architecture set in the module call is the one the build comment
    builds (the arm64 example under an x86_64 build was the bug)."""
    readme = (MODULE / "README.md").read_text()
    example = readme.split('module "reassembly_trigger" {', 1)[1].split("\n}\n", 1)[0]
    architecture = re.search(r'^\s*architecture\s*=\s*"(\w+)"', example, re.M)
    runtime = re.search(r'^\s*runtime\s*=\s*"([\w.]+)"', example, re.M)
    assert architecture is not None
    assert runtime is not None
    build = re.search(r"#.*?((?:\w+=\S+ )*)bash \S*build_deploy_zip\.sh", example)
    assert build is not None, "the example names its build command"
    variables = dict(pair.split("=", 1) for pair in build.group(1).split())
    assert variables.get("ARCH", "x86_64") == architecture.group(1)
    assert variables.get("RUNTIME", "python3.12") == runtime.group(1)


def test_the_provider_lower_bound_is_the_release_that_has_what_the_module_uses() -> None:
    """aws >= 5.32 (logging_config and the python3.12 runtime value arrived in 5.32.0,
    said in a comment) and below 7 (5.x and 6.x are what it is planned against: a major
    release may remove what it uses); Terraform >= 1.5 for the check block."""
    versions = (MODULE / "versions.tf").read_text()
    terraform = module()["terraform"]
    (providers,) = terraform["required_providers"]
    assert providers["aws"]["version"] == ">= 5.32, < 7"
    assert terraform["required_version"] == ">= 1.5"
    comment = versions.split("required_providers", 1)[1].split('version = ">= 5.32, < 7"')[0]
    assert "5.32.0" in comment
    assert "logging_config" in comment
    assert "python3.12" in comment
    assert module()["check"]


# ------------------------------------------------------------------ the zip and its manifest


def test_the_default_zip_is_the_builds_default_output_for_the_same_target() -> None:
    """<module>/../dist/deploy-<runtime>-<architecture>.zip, exactly what the build script
    writes by default, and the manifest beside it where make_zip.py puts it."""
    import importlib.util

    assert local("deployment_zip_path") == (
        "${coalesce(var.deployment_zip_path, "
        '"${path.module}/../dist/deploy-${var.runtime}-${var.architecture}.zip")}'
    )
    script = (ROOT / "scripts" / "build_deploy_zip.sh").read_text()
    assert 'dist="${DIST:-$root/dist}"' in script
    assert 'output="${OUTPUT:-$dist/deploy-$runtime-$arch.zip}"' in script
    assert local("deployment_manifest_path") == (
        '${coalesce(var.deployment_manifest_path, "${local.deployment_zip_path}.manifest.json")}'
    )
    spec = importlib.util.spec_from_file_location("make_zip", ROOT / "scripts" / "make_zip.py")
    assert spec is not None
    assert spec.loader is not None
    make_zip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_zip)
    assert make_zip.manifest_path(Path("d/deploy-x.zip")) == Path("d/deploy-x.zip.manifest.json")


def test_the_manifest_is_read_at_plan_time_and_a_missing_one_is_tolerated() -> None:
    """The manifest is decoded from the file (null when absent) and the zip's own sha256
    is computed only when the zip exists."""
    assert local("deployed") == "${fileexists(local.deployment_zip_path)}"
    assert local("manifest") == "${try(jsondecode(file(local.deployment_manifest_path)), null)}"
    assert local("zip_sha256") == ('${local.deployed ? filesha256(local.deployment_zip_path) : ""}')


def test_the_function_refuses_a_zip_built_for_another_target_naming_both_values() -> None:
    """Preconditions on the reconciler (the function every deployment has, running the
    same zip): a manifest exists; its runtime, architecture and sha256 equal the
    functions' runtime, architecture and the zip's own hash; each message names both."""
    lifecycle = block(resource("aws_lambda_function", "reconciler"), "lifecycle")
    checks = {p["condition"]: p["error_message"] for p in lifecycle["precondition"]}
    trigger = block(resource("aws_lambda_function", "trigger"), "lifecycle")
    assert not [p for p in trigger["precondition"] if "local.manifest" in p["condition"]]
    assert checks["${local.manifest != null}"].startswith("No build manifest at ")
    pairs = {
        "${local.manifest == null || local.built.runtime == var.runtime}": (
            "${local.built.runtime}",
            "${var.runtime}",
        ),
        "${local.manifest == null || local.built.architecture == var.architecture}": (
            "${local.built.architecture}",
            "${var.architecture}",
        ),
        "${local.manifest == null || local.built.sha256 == local.zip_sha256}": (
            "${local.built.sha256}",
            "${local.zip_sha256}",
        ),
    }
    for condition, (built, configured) in pairs.items():
        assert built in checks[condition]
        assert configured in checks[condition]
        assert "${local.rebuild_hint}" in checks[condition]
    assert local("rebuild_hint") == (
        "RUNTIME=${var.runtime} ARCH=${var.architecture} bash scripts/build_deploy_zip.sh"
    )


def _gate(type_: str, name: str) -> str:
    body = resource(type_, name)
    gate = body.get("count", body.get("for_each"))
    assert isinstance(gate, str), (type_, name)
    return gate


def test_without_a_zip_nothing_that_runs_the_code_is_planned() -> None:
    """The functions, aliases, mappings, invoke config, schedule (and its role), the
    alarms on the functions and the dashboard all have count/for_each on the zip."""
    on_the_zip = (
        "local.deployed",
        "local.stream_deployed",
        "local.alarms_on_functions",
        "local.alarms_on_stream_trigger",
    )
    for type_, name in sorted(GATED_ON_THE_ZIP):
        assert any(word in _gate(type_, name) for word in on_the_zip), (type_, name)
    assert local("alarms_on_functions") == "${local.deployed && var.alarms_enabled}"
    assert local("stream_deployed") == "${local.deployed ? local.stream_trigger : false}"
    assert local("alarms_on_stream_trigger") == "${local.stream_deployed && var.alarms_enabled}"


def test_without_the_stream_trigger_nothing_of_the_stream_function_is_planned() -> None:
    """stream_trigger_enabled (default true) gates the stream function, its role, log
    group, aliases, mappings, on-failure queue and their alarms; the reconciler, its
    schedule and its alarms are gated on the zip only."""
    assert default("stream_trigger_enabled") is True
    assert local("stream_trigger") == "${var.stream_trigger_enabled}"
    on_the_stream = (
        "local.stream_trigger",
        "local.stream_deployed",
        "local.alarms_on_stream_trigger",
    )
    for type_, name in sorted(GATED_ON_THE_STREAM_TRIGGER):
        assert any(word in _gate(type_, name) for word in on_the_stream), (type_, name)
    reconciler_side = [
        ("aws_lambda_function", "reconciler"),
        ("aws_lambda_alias", "reconciler_live"),
        ("aws_scheduler_schedule", "reconcile"),
        ("aws_cloudwatch_metric_alarm", "reconciler_enqueued"),
        ("aws_cloudwatch_metric_alarm", "unclaimed"),
    ]
    for type_, name in reconciler_side:
        assert not any(word in _gate(type_, name) for word in on_the_stream), (type_, name)
    assert "count" not in resource("aws_cloudwatch_log_group", "reconciler")
    assert "count" not in resource("aws_iam_role", "reconciler")
    (document,) = [module()["data"]["aws_iam_policy_document"]["trigger"]]
    assert document["count"] == "${local.stream_trigger ? 1 : 0}"


def test_no_gate_hangs_on_whether_an_unknown_arn_is_null() -> None:
    """A stream ARN of a table created in the same apply is unknown at plan time, and
    `local.deployed && var.jobs_stream_arn != null` is then unknown too (Terraform
    cannot count on it): every gate that reads an ARN does so only inside a
    conditional's branch, after the gates known at plan time."""
    for type_, named in module()["resource"].items():
        for name in named:
            body = resource(type_, name)
            gate = body.get("count", body.get("for_each"))
            if not isinstance(gate, str) or "_arn" not in gate:
                continue
            assert re.match(r"^\$\{local\.\w+ \? \(", gate), (type_, name, gate)
    assert local("mapping_aliases").startswith("${local.stream_trigger ? merge(")


def test_whatever_references_a_gated_resource_is_gated_itself() -> None:
    """No resource created without the zip (or without the stream trigger) refers to one
    planned only with it (that would fail the plan); outputs and locals reach them only
    through splats or one()."""
    for gated_set in (GATED_ON_THE_ZIP, GATED_ON_THE_STREAM_TRIGGER):
        gated = {f"{type_}.{name}" for type_, name in gated_set}
        for type_, named in module()["resource"].items():
            for name, body in named.items():
                if (type_, name) in gated_set:
                    continue
                text = json.dumps(body)
                assert not [ref for ref in gated if ref in text], (type_, name)
        for name, output in module()["output"].items():
            value = json.dumps(output["value"])
            for ref in gated:
                assert f"{ref}." not in value or f"{ref}[*]" in value, (name, ref)
        for name, value_ in module()["locals"].items():
            value = json.dumps(value_)
            for ref in gated:
                assert f"{ref}[0]" not in value, (name, ref)
                assert f"{ref}." not in value, (name, ref)


def test_a_missing_zip_is_said_by_an_output_and_a_warning() -> None:
    """`deployed` is an output, and a check block (a warning, not an error) names the
    missing path, that nothing running the code is planned, and the build command."""
    assert module()["output"]["deployed"]["value"] == "${local.deployed}"
    (assertion,) = module()["check"]["deployment_zip_exists"]["assert"]
    assert assertion["condition"] == "${local.deployed}"
    message = assertion["error_message"]
    assert "${local.deployment_zip_path}" in message
    assert "deployed = false" in message
    assert "${local.rebuild_hint}" in message


def test_resources_that_gained_count_are_moved_not_replaced() -> None:
    """State written before count existed keeps its function, alias, mapping, role, role
    policy, log group and on-failure queue (with its messages)."""
    moves = {(m["from"], m["to"]) for m in module()["moved"]}
    gained = [
        "aws_lambda_function.trigger",
        "aws_lambda_alias.live",
        "aws_lambda_event_source_mapping.segment_completions",
        "aws_iam_role.trigger",
        "aws_iam_role_policy.trigger",
        "aws_cloudwatch_log_group.trigger",
        "aws_sqs_queue.on_failure",
    ]
    assert moves == {(f"${{{address}}}", f"${{{address}[0]}}") for address in gained}
    for address in gained:
        type_, name = address.split(".")
        assert _gate(type_, name).endswith("? 1 : 0}"), address


# ------------------------------------------------------------------ the stream function


def test_the_function_runs_the_built_zip_with_the_handler_the_code_defines() -> None:
    """The zip's hash drives updates and the handler is ours."""
    function = resource("aws_lambda_function", "trigger")
    assert function["filename"] == "${local.deployment_zip_path}"
    assert function["source_code_hash"] == "${filebase64sha256(local.deployment_zip_path)}"
    assert function["handler"] == "reassembly_trigger.handler.lambda_handler"
    from reassembly_trigger import handler

    assert callable(handler.lambda_handler)


def test_runtime_and_architecture_default_to_what_the_build_makes_by_default() -> None:
    """The module's defaults (python3.12, x86_64) are the build script's defaults."""
    function = resource("aws_lambda_function", "trigger")
    assert function["runtime"] == "${var.runtime}"
    assert function["architectures"] == ["${var.architecture}"]
    script = (ROOT / "scripts" / "build_deploy_zip.sh").read_text()
    assert f'runtime="${{RUNTIME:-{default("runtime")}}}"' in script
    assert f'arch="${{ARCH:-{default("architecture")}}}"' in script


def test_timeout_memory_and_json_logs_are_set() -> None:
    """Timeout (60 s by default) and memory are variables; logs are JSON in our group at
    the configured application and system levels."""
    function = resource("aws_lambda_function", "trigger")
    assert function["timeout"] == "${var.timeout_seconds}"
    assert default("timeout_seconds") == 60
    assert function["memory_size"] == "${var.memory_size_mb}"
    logging = block(function, "logging_config")
    assert logging == {
        "log_format": "JSON",
        "log_group": "${aws_cloudwatch_log_group.trigger[0].name}",
        "application_log_level": "${var.application_log_level}",
        "system_log_level": "${var.system_log_level}",
    }


def test_the_written_out_names_are_the_codes_names() -> None:
    """The environment, the reasons' metrics and both metric lines, as the code has them."""
    from reassembly_trigger.machine import FailReason, SkipReason
    from reassembly_trigger.metrics import METRIC_UNITS, RECONCILE_METRIC_UNITS, metric_name
    from reassembly_trigger.reconcile import lambda_handler

    assert set(ENVIRONMENT_VARIABLES) == CORE_ENVIRONMENT
    assert [metric_name("Skipped", r) for r in SkipReason] == CORE_SKIP_METRICS
    assert [metric_name("Failed", r) for r in FailReason] == CORE_FAIL_METRICS
    assert set(METRIC_UNITS) == CORE_STREAM_METRICS
    assert set(RECONCILE_METRIC_UNITS) >= CORE_RECONCILER_METRICS
    assert callable(lambda_handler)


def test_every_environment_variable_the_code_reads_is_set_on_both_functions() -> None:
    """Both functions get local.environment: settings.ENVIRONMENT_VARIABLES and the core's
    new variables (LEASE_WAIT_SECONDS, JOBS_STATUS_INDEX_NAME, ...), each from a variable."""
    environment = local("environment")
    assert set(environment) == set(ENVIRONMENT_VARIABLES) == CORE_ENVIRONMENT
    assert all(value.startswith("${") for value in environment.values())
    assert environment["LOCK_LEASE_SECONDS"] == "${tostring(var.lock_lease_seconds)}"
    assert environment["LEASE_WAIT_SECONDS"] == "${tostring(var.lease_wait_seconds)}"
    assert environment["JOBS_STATUS_INDEX_NAME"] == "${var.jobs_status_index_name}"
    assert (
        default("lease_wait_seconds"),
        default("jobs_status_index_name"),
        default("reconcile_min_age_seconds"),
        default("unclaimed_after_seconds"),
    ) == (5, "status-created_at", 300, 3600)
    for name in ("trigger", "reconciler"):
        variables = block(resource("aws_lambda_function", name), "environment")["variables"]
        assert variables == "${local.environment}"


def test_the_log_groups_are_the_functions_and_have_a_retention() -> None:
    """Logs go to /aws/lambda/<function> and /aws/lambda/<function>-reconciler, and expire."""
    names = {
        "trigger": "/aws/lambda/${var.function_name}",
        "reconciler": "/aws/lambda/${local.reconciler_name}",
    }
    for key, name in names.items():
        group = resource("aws_cloudwatch_log_group", key)
        assert group["name"] == name
        assert group["retention_in_days"] == "${var.log_retention_days}"
    assert local("reconciler_name") == "${var.function_name}-reconciler"
    assert isinstance(default("log_retention_days"), int)
    assert default("function_name") == "stereo-spot-reassembly-trigger"


# ------------------------------------------------------------------ log levels and the metrics


#: Lambda's application log levels, most verbose first.
LAMBDA_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def _allowed(condition: str) -> list[str]:
    match = re.fullmatch(r"\$\{contains\(\[(.*)\], var\.\w+\)\}", condition)
    assert match, condition
    return [item.strip().strip('"') for item in match.group(1).split(",")]


def test_log_levels_are_validated_against_lambdas_levels() -> None:
    """application_log_level: one of Lambda's six; system_log_level: DEBUG, INFO or WARN
    (default WARN, as before)."""
    first, _ = validations("application_log_level")
    assert _allowed(first["condition"]) == LAMBDA_LEVELS
    (system,) = validations("system_log_level")
    assert _allowed(system["condition"]) == ["DEBUG", "INFO", "WARN"]
    assert default("system_log_level") == "WARN"
    assert default("application_log_level") == "INFO"


def test_a_level_that_would_drop_the_metric_lines_is_refused(
    invoke: Invoker, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN the EMF line the handler really prints THEN, with Lambda's rule (a missing
    or invalid "level" is INFO), every application_log_level the module accepts keeps
    it, and the refused ones are exactly those that would drop it."""
    capsys.readouterr()
    invoke(stream_event())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (document,) = lines
    level = str(document.get("level", "INFO")).upper()
    level = level if level in LAMBDA_LEVELS else "INFO"
    _, guard = validations("application_log_level")
    accepted = _allowed(guard["condition"])
    keeps = [lvl for lvl in LAMBDA_LEVELS if LAMBDA_LEVELS.index(lvl) <= LAMBDA_LEVELS.index(level)]
    assert accepted == keeps
    assert "would drop the EMF metric lines" in guard["error_message"]
    assert default("application_log_level") in accepted


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize(
    ("variable", "condition"),
    [
        (
            "batch_size",
            "${var.batch_size >= 1 && var.batch_size <= 10000"
            " && floor(var.batch_size) == var.batch_size}",
        ),
        (
            "maximum_batching_window_in_seconds",
            "${(var.maximum_batching_window_in_seconds >= 0"
            " && var.maximum_batching_window_in_seconds <= 300"
            " && floor(var.maximum_batching_window_in_seconds)"
            " == var.maximum_batching_window_in_seconds)}",
        ),
        (
            "maximum_retry_attempts",
            "${var.maximum_retry_attempts >= 0 && var.maximum_retry_attempts <= 10000}",
        ),
        (
            "maximum_record_age_in_seconds",
            "${var.maximum_record_age_in_seconds >= 60"
            " && var.maximum_record_age_in_seconds <= 604800}",
        ),
        (
            "parallelization_factor",
            "${var.parallelization_factor >= 1 && var.parallelization_factor <= 10}",
        ),
        (
            "timeout_seconds",
            "${var.timeout_seconds >= 2 && var.timeout_seconds <= 900"
            " && floor(var.timeout_seconds) == var.timeout_seconds}",
        ),
        (
            "reconciler_timeout_seconds",
            "${var.reconciler_timeout_seconds >= 2 && var.reconciler_timeout_seconds <= 900"
            " && floor(var.reconciler_timeout_seconds) == var.reconciler_timeout_seconds}",
        ),
    ],
)
def test_mapping_and_function_settings_are_held_to_lambdas_limits(
    variable: str, condition: str
) -> None:
    """Batch size 1-10,000, batching window 0-300 s, retries 0-10,000 (finite), record age
    60-604,800 s (finite), parallelization 1-10, timeouts 2-900 s (whole); defaults inside."""
    (validation,) = validations(variable)
    assert re.sub(r"\s+", " ", validation["condition"]) == condition
    bounds = [int(n) for n in re.findall(r"[<>]= (\d+)", condition)]
    assert bounds[0] <= default(variable) <= bounds[1]


# ------------------------------------------------------------------ the code's own bounds

#: The smallest function timeout the code works at (issue 20): one job's load, count,
#: lock, send and mark, each AWS call bounded by the time left, fit after the 0.25 s
#: kept to answer Lambda and the 0.75 s floor of one bounded call.
MIN_TIMEOUT_SECONDS = MIN_FUNCTION_TIMEOUT_SECONDS
#: The timeout variables and their bounds: the code's minimum, Lambda's maximum.
TIMEOUT_BOUNDS = {
    "timeout_seconds": (MIN_TIMEOUT_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS),
    "reconciler_timeout_seconds": (MIN_TIMEOUT_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS),
}
#: A valid value for each variable the code requires; the probes vary one at a time.
REQUIRED_SETTINGS = dict.fromkeys(REQUIRED_VARIABLES, "x")


def code_accepts(variable: str, value: str) -> bool:
    """Whether Settings.from_env starts with `variable` = `value` (the rest valid)."""
    try:
        Settings.from_env({**REQUIRED_SETTINGS, variable: value})
    except SettingsError:
        return False
    return True


def _last_accepted(variable: str, inside: int, outside: int) -> int:
    """The accepted value nearest `outside`, between an accepted and a refused value."""
    assert code_accepts(variable, str(inside))
    assert not code_accepts(variable, str(outside))
    while abs(outside - inside) > 1:
        middle = (inside + outside) // 2
        if code_accepts(variable, str(middle)):
            inside = middle
        else:
            outside = middle
    return inside


@cache
def code_whole_number_bounds() -> dict[str, tuple[int, int]]:
    """The range Settings.from_env accepts for each whole-number setting (by environment
    variable), found by asking it: its default is inside, -1 and a billion are outside,
    and a value with a fraction is refused."""
    defaults = Settings.from_env(REQUIRED_SETTINGS)
    bounds: dict[str, tuple[int, int]] = {}
    for variable in ENVIRONMENT_VARIABLES:
        value = getattr(defaults, variable.lower())
        if not isinstance(value, int):
            continue
        low = _last_accepted(variable, value, -1)
        high = _last_accepted(variable, value, 10**9)
        assert not code_accepts(variable, f"{low}.5"), variable
        bounds[variable] = (low, high)
    return bounds


def environment_variables() -> dict[str, str]:
    """The module variable each environment variable of the functions is set from."""
    found: dict[str, str] = {}
    for name, value in local("environment").items():
        match = re.fullmatch(r"\$\{(?:tostring\()?var\.(\w+)\)?\}", value)
        assert match, (name, value)
        found[name] = match.group(1)
    return found


def terraform_whole_number_bounds() -> dict[str, tuple[int, int]]:
    """The module variables that must be whole numbers in a range: the code's settings
    (their bounds from the code) and the timeouts."""
    variables = environment_variables()
    return {
        **{variables[env]: bounds for env, bounds in code_whole_number_bounds().items()},
        **TIMEOUT_BOUNDS,
    }


def whole_number_message(variable: str, low: int, high: int) -> str:
    """The start of the message a variable out of its range is refused with."""
    return f"{variable} must be a whole number from {low} to {high}"


def test_the_bounds_found_in_the_code_are_the_documented_ones() -> None:
    """The probe finds what Settings.from_env says it enforces (so a probe that found
    nothing cannot pass the tests below)."""
    assert code_whole_number_bounds() == {
        "LOCK_LEASE_SECONDS": (1, 900),
        "EVALUATION_CONCURRENCY": (1, 128),
        "LEASE_WAIT_SECONDS": (0, 60),
        "RECONCILE_MIN_AGE_SECONDS": (0, 7 * 86400),
        "UNCLAIMED_AFTER_SECONDS": (1, 30 * 86400),
    }
    for variable in REQUIRED_VARIABLES:
        assert not code_accepts(variable, "")
        assert not code_accepts(variable, "   ")


def test_every_variable_in_the_environment_is_validated() -> None:
    """Each variable that ends up in the functions' environment has a validation and
    cannot be null (null would leave the setting unset or the plan failing on `tostring`)."""
    for env, variable in environment_variables().items():
        spec = module()["variable"][variable]
        assert validations(variable), (env, variable)
        assert spec.get("nullable") is False, variable


@pytest.mark.parametrize("variable", sorted(terraform_whole_number_bounds()))
def test_each_whole_number_variable_is_held_to_the_codes_bounds(variable: str) -> None:
    """The validation is exactly `low <= x <= high` and whole, with the code's bounds
    (the timeouts: the code's minimum and Lambda's maximum), a message naming them, and
    the default inside."""
    low, high = terraform_whole_number_bounds()[variable]
    (validation,) = validations(variable)
    assert " ".join(validation["condition"].split()) == (
        f"${{var.{variable} >= {low} && var.{variable} <= {high}"
        f" && floor(var.{variable}) == var.{variable}}}"
    )
    assert validation["error_message"].startswith(whole_number_message(variable, low, high))
    assert isinstance(default(variable), int)
    assert low <= default(variable) <= high


@pytest.mark.parametrize("variable", ["timeout_seconds", "reconciler_timeout_seconds"])
def test_a_timeout_too_small_to_work_is_refused_with_the_reason(variable: str) -> None:
    """Below the code's minimum one job's bounded calls cannot fit: the message says so."""
    (validation,) = validations(variable)
    message = validation["error_message"]
    assert f"below {MIN_TIMEOUT_SECONDS} s" in message
    assert "0.25 s kept to answer Lambda" in message
    assert "Lambda's limit" in message


@pytest.mark.parametrize("env", REQUIRED_VARIABLES)
def test_a_name_the_code_requires_may_not_be_empty(env: str) -> None:
    """The names the code requires: refused empty or blank, as the code refuses them."""
    variable = environment_variables()[env]
    (validation,) = validations(variable)
    assert validation["condition"] == f'${{trimspace(var.{variable}) != ""}}'
    assert validation["error_message"].startswith(f"{variable} must not be empty")


@pytest.mark.parametrize("variable", ["metrics_namespace", "jobs_status_index_name"])
def test_a_name_the_code_would_read_otherwise_than_the_module_is_refused(variable: str) -> None:
    """The code reads an empty namespace or index name as its default and strips spaces;
    the alarms (namespace) and the reconciler's role (index) use the value as written,
    so an empty or padded value is refused rather than watched or granted wrongly."""
    (validation,) = validations(variable)
    condition = validation["condition"]
    assert f'trimspace(var.{variable}) != ""' in condition
    assert f"trimspace(var.{variable}) == var.{variable}" in condition
    assert validation["error_message"].startswith(f"{variable} must be non-empty")


@pytest.mark.parametrize("setting", ["maximum_retry_attempts", "maximum_record_age_in_seconds"])
def test_infinite_retries_are_refused_by_validation(setting: str) -> None:
    """-1 (retry forever, which would block the shard) fails the variable's validation."""
    (validation,) = validations(setting)
    assert f"var.{setting} >= " in validation["condition"]
    assert "-1" in validation["error_message"]


# ------------------------------------------------------------------ SnapStart


def test_snap_start_is_offered_off_by_default_on_published_versions_only() -> None:
    """snap_start (default false) adds SnapStart on published versions to the stream
    function, which publishes every change; it is refused below python3.12."""
    assert default("snap_start") is False
    function = resource("aws_lambda_function", "trigger")
    assert function["publish"] is True
    (dynamic,) = function["dynamic"]
    assert dynamic["snap_start"]["for_each"] == "${var.snap_start ? [1] : []}"
    assert block(dynamic["snap_start"], "content") == {"apply_on": "PublishedVersions"}
    lifecycle = block(function, "lifecycle")
    (guard,) = [p for p in lifecycle["precondition"] if "var.snap_start" in p["condition"]]
    assert guard["condition"] == (
        '${!var.snap_start || contains(["python3.12", "python3.13", "python3.14"], var.runtime)}'
    )
    assert "dynamic" not in resource("aws_lambda_function", "reconciler")


# ------------------------------------------------------------------ the mappings


@pytest.mark.parametrize(
    ("mapping", "alias"), [("segment_completions", "live"), ("jobs", "live_jobs")]
)
def test_a_mapping_reports_partial_failures_bisects_and_gives_up_finitely(
    mapping: str, alias: str
) -> None:
    """ReportBatchItemFailures, bisect on error, finite retries and record age, the
    given-up batches' metadata to the on-failure queue, and the mapping's own alias."""
    esm = resource("aws_lambda_event_source_mapping", mapping)
    assert esm["function_response_types"] == ["ReportBatchItemFailures"]
    assert esm["bisect_batch_on_function_error"] is True
    assert esm["maximum_retry_attempts"] == "${var.maximum_retry_attempts}"
    assert esm["maximum_record_age_in_seconds"] == "${var.maximum_record_age_in_seconds}"
    assert 0 <= default("maximum_retry_attempts") <= 10000
    assert 60 <= default("maximum_record_age_in_seconds") <= 604800
    on_failure = block(block(esm, "destination_config"), "on_failure")
    assert on_failure["destination_arn"] == "${aws_sqs_queue.on_failure[0].arn}"
    assert esm["starting_position"] == "LATEST"
    assert esm["function_name"] == f"${{aws_lambda_alias.{alias}[0].arn}}"


def test_each_mapping_has_its_own_alias_on_the_same_version() -> None:
    """ "live" (SegmentCompletions) and "live-jobs" (Jobs) both follow live_version, so
    IteratorAge is measured per mapping and a roll-back moves both."""
    assert local("mapping_aliases") == (
        '${local.stream_trigger ? merge({segment_completions = "live"},'
        ' var.jobs_stream_arn == null ? {} : {jobs = "live-jobs"}) : {}}'
    )
    live, live_jobs = (
        resource("aws_lambda_alias", "live"),
        resource("aws_lambda_alias", "live_jobs"),
    )
    assert live["name"] == "${local.mapping_aliases.segment_completions}"
    assert live_jobs["name"] == "live-jobs"
    version = "${coalesce(var.live_version, aws_lambda_function.trigger[0].version)}"
    assert live["function_version"] == live_jobs["function_version"] == version


@pytest.mark.parametrize(
    ("mapping", "variable"),
    [
        ("segment_completions", "batch_size"),
        ("segment_completions", "maximum_batching_window_in_seconds"),
        ("segment_completions", "parallelization_factor"),
        ("jobs", "batch_size"),
        ("jobs", "parallelization_factor"),
    ],
)
def test_batching_is_tuned_by_variables(mapping: str, variable: str) -> None:
    """Batch size, batching window and parallelization factor come from variables."""
    esm = resource("aws_lambda_event_source_mapping", mapping)
    assert esm[variable] == f"${{var.{variable}}}"
    assert isinstance(default(variable), int)


def test_the_jobs_mapping_exists_only_with_a_jobs_stream_and_a_zip() -> None:
    """count is 0 unless jobs_stream_arn is given (and the zip exists, and the stream
    trigger is on), the ARN read only once those are known to be true."""
    esm = resource("aws_lambda_event_source_mapping", "jobs")
    gate = "${local.stream_deployed ? (var.jobs_stream_arn == null ? 0 : 1) : 0}"
    assert esm["count"] == gate
    assert resource("aws_lambda_alias", "live_jobs")["count"] == gate
    assert esm["event_source_arn"] == "${var.jobs_stream_arn}"
    assert default("jobs_stream_arn") is None


def test_each_mode_refuses_the_stream_arn_it_cannot_use() -> None:
    """With the stream trigger, segment_completions_stream_arn (default null) is
    required; without it, a jobs_stream_arn (a Jobs mapping with no function to invoke)
    is refused; both messages name the variables."""
    assert default("segment_completions_stream_arn") is None
    (required,) = block(resource("aws_iam_role", "trigger"), "lifecycle")["precondition"]
    assert required["condition"] == "${var.segment_completions_stream_arn != null}"
    assert "stream_trigger_enabled" in required["error_message"]
    (refused,) = block(resource("aws_iam_role", "reconciler"), "lifecycle")["precondition"]
    assert refused["condition"] == ("${local.stream_trigger ? true : var.jobs_stream_arn == null}")
    assert "jobs_stream_arn" in refused["error_message"]
    assert "trigger_job" in refused["error_message"]


def _filter_pattern(mapping: str) -> EventPattern:
    esm = resource("aws_lambda_event_source_mapping", mapping)
    pattern = block(block(esm, "filter_criteria"), "filter")["pattern"]
    name = re.fullmatch(r"\$\{jsonencode\(local\.(\w+)\)\}", pattern)
    assert name, pattern
    return EventPattern.load(json.dumps(local(name.group(1))))


def test_the_segment_completions_filter_keeps_inserts_and_drops_ttl_removals() -> None:
    """GIVEN the contract's INSERT batch and its TTL REMOVE record
    THEN every INSERT passes the filter and the REMOVE does not."""
    pattern = _filter_pattern("segment_completions")
    inserts = contract_records("segment-completions-batch.json")
    removals = contract_records("segment-completions-ttl-remove.json")
    assert inserts
    assert removals
    assert all(pattern.matches_event(record) for record in inserts)
    assert not any(pattern.matches_event(record) for record in removals)


def test_the_filter_does_not_rely_on_the_event_name() -> None:
    """The pattern matches the `dynamodb` key only (NewImage.job_id exists)."""
    assert local("segment_completion_filter") == {
        "dynamodb": {"NewImage": {"job_id": {"S": [{"exists": True}]}}}
    }


def test_the_jobs_filter_passes_only_chunking_complete() -> None:
    """The contract's chunking-complete MODIFY passes; the same record at another status
    does not."""
    pattern = _filter_pattern("jobs")
    (record,) = contract_records("jobs-chunking-complete.json")
    assert pattern.matches_event(record)
    record["dynamodb"]["NewImage"]["status"] = {"S": "chunking_in_progress"}
    assert not pattern.matches_event(record)


# ------------------------------------------------------------------ the reconciler


def test_the_reconciler_is_a_second_function_from_the_same_zip() -> None:
    """Same zip and hash, handler reassembly_trigger.reconcile.lambda_handler, its own
    timeout (300 s by default), no reserved concurrency unless asked, its role and its
    log group."""
    reconciler = resource("aws_lambda_function", "reconciler")
    trigger = resource("aws_lambda_function", "trigger")
    for key in ("filename", "source_code_hash", "runtime", "architectures"):
        assert reconciler[key] == trigger[key], key
    assert reconciler["function_name"] == "${local.reconciler_name}"
    assert reconciler["handler"] == "reassembly_trigger.reconcile.lambda_handler"
    assert reconciler["timeout"] == "${var.reconciler_timeout_seconds}"
    assert default("reconciler_timeout_seconds") == 300
    assert reconciler["reserved_concurrent_executions"] == (
        "${var.reconciler_reserved_concurrency}"
    )
    assert reconciler["role"] == "${aws_iam_role.reconciler.arn}"
    logging = block(reconciler, "logging_config")
    assert logging["log_group"] == "${aws_cloudwatch_log_group.reconciler.name}"
    assert logging["log_format"] == "JSON"


def test_the_reconcilers_reserved_concurrency_is_opt_in_and_says_why() -> None:
    """Reserving any concurrency fails `apply` on an account whose limit leaves less than
    100 unreserved (new and sandbox accounts: 10 or 50), and overlapping runs are safe,
    so the default is none (null: the provider's -1, unreserved); 0 (every run
    throttled) and fractions are refused; the description says why and when to set it."""
    spec = module()["variable"]["reconciler_reserved_concurrency"]
    assert spec["default"] is None
    (validation,) = validations("reconciler_reserved_concurrency")
    assert " ".join(validation["condition"].split()) == (
        "${var.reconciler_reserved_concurrency == null || try(var.reconciler_reserved_concurrency"
        " >= 1 && floor(var.reconciler_reserved_concurrency) =="
        " var.reconciler_reserved_concurrency, false)}"
    )
    assert "reconcile_enabled = false" in validation["error_message"]
    description = spec["description"]
    for words in ("100", "new and sandbox accounts", "conditional", "null"):
        assert words in description, words
    for path in ("reconciler.tf", "alarms.tf"):
        assert "reserved concurrency of 1" not in (MODULE / path).read_text(), path


def test_the_schedule_runs_the_reconcilers_alias_every_five_minutes_by_default() -> None:
    """EventBridge Scheduler, reconcile_schedule_expression (rate(5 minutes)), on unless
    reconcile_enabled is false (then DISABLED, the function stays), no retries."""
    schedule = resource("aws_scheduler_schedule", "reconcile")
    assert schedule["schedule_expression"] == "${var.reconcile_schedule_expression}"
    assert default("reconcile_schedule_expression") == "rate(5 minutes)"
    assert schedule["state"] == '${var.reconcile_enabled ? "ENABLED" : "DISABLED"}'
    assert default("reconcile_enabled") is True
    target = block(schedule, "target")
    assert target["arn"] == "${aws_lambda_alias.reconciler_live[0].arn}"
    assert target["role_arn"] == "${aws_iam_role.schedule[0].arn}"
    assert block(target, "retry_policy")["maximum_retry_attempts"] == 0
    assert block(schedule, "flexible_time_window") == {"mode": "OFF"}
    invoke_config = resource("aws_lambda_function_event_invoke_config", "reconciler")
    assert invoke_config["maximum_retry_attempts"] == 0
    assert invoke_config["qualifier"] == "${aws_lambda_alias.reconciler_live[0].name}"


def test_the_reconciler_gets_exactly_its_calls_with_query_only_on_the_index() -> None:
    """The reconciler's statements are the core's list (RECONCILER_STATEMENTS): Query on
    the Jobs table only through the status index, no stream or on-failure permissions."""
    statements = policy_statements("reconciler")
    assert {sid: (s["actions"], s["resources"]) for sid, s in statements.items()} == (
        RECONCILER_STATEMENTS
    )
    assert all(s["effect"] == "Allow" for s in statements.values())
    jobs_queries = [
        resource_
        for s in statements.values()
        if "dynamodb:Query" in s["actions"]
        for resource_ in s["resources"]
        if resource_.startswith("${var.jobs_table_arn}")
    ]
    assert jobs_queries == ["${var.jobs_table_arn}/index/${var.jobs_status_index_name}"]


def test_the_schedule_may_only_invoke_the_reconcilers_alias() -> None:
    """The scheduler's role: assumed by scheduler.amazonaws.com of this account only, and
    allowed lambda:InvokeFunction on the reconciler's alias, nothing else."""
    (statement,) = module()["data"]["aws_iam_policy_document"]["schedule_assume_role"]["statement"]
    assert block(statement, "principals")["identifiers"] == ["scheduler.amazonaws.com"]
    assert block(statement, "condition") == {
        "test": "StringEquals",
        "variable": "aws:SourceAccount",
        "values": ["${local.account_id}"],
    }
    policy = resource("aws_iam_role_policy", "schedule")["policy"]
    assert "lambda:InvokeFunction" in policy
    assert "aws_lambda_alias.reconciler_live[0].arn" in policy
    assert policy.count("Action") == 1


# ------------------------------------------------------------------ IAM of the stream function


def test_no_statement_grants_a_wildcard_action() -> None:
    """Every action is named in full, in every policy document."""
    for document in module()["data"]["aws_iam_policy_document"]:
        for sid, statement in policy_statements(document).items():
            assert [a for a in statement["actions"] if "*" in a] == [], (document, sid)


def test_each_statement_is_scoped_to_its_own_resources() -> None:
    """Each statement's actions on exactly its resource; "*" only for ListStreams."""
    expected = {
        **TRIGGER_JOB_STATEMENTS,  # the code's own calls, then what Lambda does for it
        "ReadTheStreams": (
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            "${local.stream_arns}",
        ),
        "ListStreams": (["dynamodb:ListStreams"], ["*"]),
        "ReportGivenUpBatches": (["sqs:SendMessage"], ["${aws_sqs_queue.on_failure[0].arn}"]),
        "WriteOwnLogs": (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            ["${aws_cloudwatch_log_group.trigger[0].arn}:*"],
        ),
    }
    statements = function_statements()
    assert {sid: (s["actions"], s["resources"]) for sid, s in statements.items()} == expected
    assert {
        sid: (s["actions"], s["resources"]) for sid, s in policy_statements("trigger_job").items()
    } == TRIGGER_JOB_STATEMENTS
    assert all(s["effect"] == "Allow" for s in statements.values())
    assert local("stream_arns") == (
        "${compact([var.segment_completions_stream_arn, var.jobs_stream_arn])}"
    )


def test_the_kms_statement_appears_only_when_keys_are_given() -> None:
    """No KMS permission unless kms_key_arns lists keys, for either function (the stream
    function's comes with trigger_job's document) or a worker."""
    for name in ("trigger_job", "reconciler"):
        document = module()["data"]["aws_iam_policy_document"][name]
        (dynamic,) = document["dynamic"]
        assert dynamic["statement"]["for_each"] == (
            "${length(var.kms_key_arns) > 0 ? [var.kms_key_arns] : []}"
        )
    assert default("kms_key_arns") == []


def test_the_code_gets_exactly_the_actions_it_calls() -> None:
    """The boto3 calls in the Lambda's modules (local/ excluded) are the actions granted
    to the stream function's code: nothing missing, nothing extra (GetItem on Jobs is not
    called, so not granted), and the reconciler's grants cover them too."""
    called = set()
    for path in (ROOT / "reassembly_trigger").rglob("*.py"):
        if "local" in path.relative_to(ROOT).parts:
            continue
        for method in re.findall(r"self\._client\.(\w+)\(", path.read_text()):
            service = "sqs" if method.endswith("_message") else "dynamodb"
            called.add(f"{service}:{''.join(p.title() for p in method.split('_'))}")
    granted = {
        action
        for sid, statement in function_statements().items()
        if sid not in SERVICE_STATEMENTS and not sid.startswith("UseCustomer")
        for action in statement["actions"]
    }
    assert called
    assert called == granted
    worker = {
        action
        for sid, (actions, _) in TRIGGER_JOB_STATEMENTS.items()
        if not sid.startswith("UseCustomer")
        for action in actions
    }
    assert called == worker
    reconciler = {
        action
        for sid, (actions, _) in RECONCILER_STATEMENTS.items()
        if sid not in SERVICE_STATEMENTS and not sid.startswith("UseCustomer")
        for action in actions
    }
    assert called <= reconciler


def test_no_cloudwatch_metrics_permission_is_needed() -> None:
    """Metrics are EMF lines on stdout, so no policy grants a cloudwatch: action."""
    for document in ("trigger", "trigger_job", "reconciler"):
        actions = [a for s in policy_statements(document).values() for a in s["actions"]]
        assert not [a for a in actions if a.startswith("cloudwatch:")]
    code = "".join(p.read_text() for p in (ROOT / "reassembly_trigger").glob("*.py"))
    assert "put_metric_data" not in code


# ------------------------------------------------------------------ alarms


ALARMS = {
    "iterator_age": ("AWS/Lambda", "IteratorAge", "iterator_age_alarm_threshold_ms"),
    "on_failure_messages": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "on_failure_messages_alarm_threshold",
    ),
    "failed_jobs": ("${var.metrics_namespace}", "JobsFailed", "failed_jobs_alarm_threshold"),
    "unexpected_errors": (
        "${var.metrics_namespace}",
        "FailedUnexpectedError",
        "unexpected_errors_alarm_threshold",
    ),
    "function_errors": ("AWS/Lambda", "Errors", "function_errors_alarm_threshold"),
    "function_throttles": ("AWS/Lambda", "Throttles", "function_throttles_alarm_threshold"),
    "reconciler_enqueued": (
        "${var.metrics_namespace}",
        "JobsEnqueued",
        "reconciler_enqueued_alarm_threshold",
    ),
    "unclaimed": ("${var.metrics_namespace}", "Unclaimed", "unclaimed_alarm_threshold"),
    "deadline_failures": (
        "${var.metrics_namespace}",
        "FailedDeadline",
        "deadline_failures_alarm_threshold",
    ),
    "reconciler_truncated": (
        "${var.metrics_namespace}",
        "Truncated",
        "reconciler_truncated_alarm_threshold",
    ),
}


def test_every_alarm_has_its_metric_a_threshold_variable_and_the_optional_topic() -> None:
    """Each alarm reads its metric, compares with its own threshold variable (a number),
    and notifies alarm_sns_topic_arn (default none) on alarm and on recovery."""
    assert set(module()["resource"]["aws_cloudwatch_metric_alarm"]) == set(ALARMS)
    for name, (namespace, metric, threshold) in ALARMS.items():
        body = alarm(name)
        assert (body["namespace"], body["metric_name"]) == (namespace, metric), name
        assert body["threshold"] == f"${{var.{threshold}}}", name
        assert isinstance(default(threshold), int), name
        assert body["comparison_operator"] == "GreaterThanThreshold", name
        assert body["alarm_actions"] == body["ok_actions"] == "${local.alarm_actions}", name
        assert body["treat_missing_data"] == "notBreaching", name
    assert local("alarm_actions") == (
        "${var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]}"
    )
    assert default("alarm_sns_topic_arn") is None
    assert default("alarms_enabled") is True


def test_iterator_age_is_alarmed_per_stream_mapping() -> None:
    """One IteratorAge alarm per mapping, on the mapping's own alias (Resource =
    function:alias), Maximum."""
    body = alarm("iterator_age")
    assert body["for_each"] == "${local.alarms_on_stream_trigger ? local.mapping_aliases : {}}"
    assert body["dimensions"] == {
        "FunctionName": "${var.function_name}",
        "Resource": "${var.function_name}:${each.value}",
    }
    assert body["statistic"] == "Maximum"


def test_the_metric_alarms_watch_the_right_function() -> None:
    """Stream-path EMF alarms on the stream function, the reconciler's on the reconciler,
    Errors on both, the on-failure queue by name; failures must persist 3 periods."""
    stream = {"FunctionName": "${var.function_name}"}
    reconciler = {"FunctionName": "${local.reconciler_name}"}
    assert alarm("failed_jobs")["dimensions"] == stream
    assert alarm("failed_jobs")["evaluation_periods"] == (
        "${var.failed_jobs_alarm_evaluation_periods}"
    )
    assert default("failed_jobs_alarm_evaluation_periods") == 3
    assert alarm("unexpected_errors")["dimensions"] == stream
    assert alarm("function_throttles")["dimensions"] == stream
    assert alarm("reconciler_enqueued")["dimensions"] == reconciler
    assert alarm("unclaimed")["dimensions"] == reconciler
    assert alarm("unclaimed")["statistic"] == "Maximum"
    assert alarm("function_errors")["dimensions"] == {"FunctionName": "${each.value}"}
    assert local("function_names") == (
        "${merge(local.stream_trigger ? {trigger = var.function_name} : {},"
        " {reconciler = local.reconciler_name})}"
    )
    assert alarm("on_failure_messages")["dimensions"] == {
        "QueueName": "${aws_sqs_queue.on_failure[0].name}"
    }
    assert alarm("on_failure_messages")["count"] == (
        "${var.alarms_enabled && local.stream_trigger ? 1 : 0}"
    )
    for name in ("failed_jobs", "unexpected_errors", "deadline_failures", "function_throttles"):
        assert alarm(name)["count"] == "${local.alarms_on_stream_trigger ? 1 : 0}", name
    for name in ("reconciler_enqueued", "unclaimed", "reconciler_truncated"):
        assert alarm(name)["count"] == "${local.alarms_on_functions ? 1 : 0}", name


def test_jobs_out_of_time_and_reconciler_runs_cut_short_are_alarmed() -> None:
    """The two silences of issue 20: the stream function's jobs failing as `deadline`
    (FailedDeadline, Sum) and reconciler runs that stop for time before reaching every
    job (Truncated, 0 or 1 per run: Maximum), each for a number of consecutive periods
    set by a variable (default 3: one slow period is retried, or covered by the cursor),
    each on its own function; both listed in the alarm_names output and the dashboard."""
    deadline = alarm("deadline_failures")
    assert deadline["dimensions"] == {"FunctionName": "${var.function_name}"}
    assert (deadline["metric_name"], deadline["statistic"]) == ("FailedDeadline", "Sum")
    assert deadline["alarm_name"] == "${var.function_name}-deadline-failures"
    assert deadline["evaluation_periods"] == "${var.deadline_failures_alarm_evaluation_periods}"
    assert "timeout_seconds" in deadline["alarm_description"]
    truncated = alarm("reconciler_truncated")
    assert truncated["dimensions"] == {"FunctionName": "${local.reconciler_name}"}
    assert (truncated["metric_name"], truncated["statistic"]) == ("Truncated", "Maximum")
    assert truncated["alarm_name"] == "${local.reconciler_name}-truncated"
    assert truncated["evaluation_periods"] == (
        "${var.reconciler_truncated_alarm_evaluation_periods}"
    )
    assert "reconciler_timeout_seconds" in truncated["alarm_description"]
    for variable in (
        "failed_jobs_alarm_evaluation_periods",
        "deadline_failures_alarm_evaluation_periods",
        "reconciler_truncated_alarm_evaluation_periods",
    ):
        assert default(variable) == 3
        (validation,) = validations(variable)
        assert f"var.{variable} >= 1" in validation["condition"]
    assert default("deadline_failures_alarm_threshold") == 0
    assert default("reconciler_truncated_alarm_threshold") == 0
    names = " ".join(local("alarm_names").split())
    assert "aws_cloudwatch_metric_alarm.deadline_failures[*].alarm_name" in names
    assert "aws_cloudwatch_metric_alarm.reconciler_truncated[*].alarm_name" in names


#: CloudWatch's limit on period x evaluation periods: one day under an hour, else 7 days.
def _cloudwatch_max_periods(period: int) -> int:
    return (86400 if period < 3600 else 604800) // period


def test_an_alarm_cloudwatch_would_refuse_for_its_length_is_refused_at_plan_time() -> None:
    """Each alarm whose evaluation periods are a variable checks them against
    CloudWatch's limit for alarm_period_seconds, which the local computes for each
    allowed period as CloudWatch does."""
    assert local("alarm_max_evaluation_periods") == (
        "${floor((var.alarm_period_seconds < 3600 ? 86400 : 604800) / var.alarm_period_seconds)}"
    )
    (period_validation,) = validations("alarm_period_seconds")
    periods = [int(n) for n in re.findall(r"\d+", period_validation["condition"])]
    assert periods == [60, 300, 900, 3600]
    assert [_cloudwatch_max_periods(p) for p in periods] == [1440, 288, 96, 168]
    for name, body in module()["resource"]["aws_cloudwatch_metric_alarm"].items():
        match = re.fullmatch(r"\$\{var\.(\w+)\}", str(body["evaluation_periods"]))
        if match is None:
            continue
        (precondition,) = block(body, "lifecycle")["precondition"]
        assert precondition["condition"] == (
            f"${{var.{match.group(1)} <= local.alarm_max_evaluation_periods}}"
        ), name


def test_the_alarms_read_only_metrics_the_core_emits() -> None:
    """Every EMF metric an alarm or the dashboard names is one the core prints, for the
    function it is read from."""
    text = (MODULE / "dashboard.tf").read_text()

    def names(local_name: str) -> set[str]:
        body = text.split(f"  {local_name} = ", 1)[1].split("\n  ]", 1)[0]
        lists = re.findall(r"for metric in \[([^\]]*)\]", body)
        singles = re.findall(r'\[var\.metrics_namespace, "(\w+)"', body)
        return {n for found in lists for n in re.findall(r'"(\w+)"', found)} | set(singles)

    assert names("emf_stream")
    assert names("emf_stream") | names("emf_duration") <= CORE_STREAM_METRICS
    assert {"JobsExamined", "Unclaimed"} <= names("emf_reconciler")
    assert names("emf_reconciler") | names("emf_reconcile_duration") <= CORE_RECONCILER_METRICS
    for name in ("failed_jobs", "unexpected_errors", "deadline_failures"):
        assert alarm(name)["metric_name"] in CORE_STREAM_METRICS
    for name in ("reconciler_enqueued", "unclaimed", "reconciler_truncated"):
        assert alarm(name)["metric_name"] in CORE_RECONCILER_METRICS


# ------------------------------------------------------------------ dashboard


def test_the_dashboard_is_on_by_default_and_shows_metrics_iterator_age_and_alarms() -> None:
    """One dashboard (dashboard_enabled, default true) whose widgets are the alarms and
    graphs of every skip and failure reason, iterator age per mapping, the on-failure
    queue, errors and throttles, and the reconciler."""
    dashboard = resource("aws_cloudwatch_dashboard", "trigger")
    assert dashboard["count"] == "${local.deployed && var.dashboard_enabled ? 1 : 0}"
    assert default("dashboard_enabled") is True
    assert dashboard["dashboard_body"] == "${jsonencode({widgets = local.dashboard_widgets})}"
    assert local("skip_reason_metrics") == CORE_SKIP_METRICS
    assert local("fail_reason_metrics") == CORE_FAIL_METRICS
    assert local("graphs") == (
        "${[for graph in local.all_graphs : graph if local.stream_trigger || !graph.stream]}"
    )
    stream_titles = [g["title"] for g in local("all_graphs") if g["stream"]]
    assert stream_titles
    assert all(t.startswith(("Stream", "Iterator", "On-failure")) for t in stream_titles)
    titles = [graph["title"] for graph in local("all_graphs")]
    assert any("Iterator age per stream mapping" in t for t in titles)
    assert any("Reconciler" in t for t in titles)
    assert any("skips by reason" in t for t in titles)
    assert any("failures by reason" in t for t in titles)
    metrics = {graph["metrics"] for graph in local("all_graphs")}
    assert {"${local.iterator_age}", "${local.emf_skips}", "${local.emf_failures}"} <= metrics
    assert "IteratorAge" in local("iterator_age")
    assert "local.alarm_arns" in local("dashboard_widgets")


# ------------------------------------------------------------------ outputs


def test_outputs_name_the_functions_the_mappings_and_the_failure_queue() -> None:
    """Function name/ARN, both mapping ids, the reconciler, the schedule, the alarms and
    the on-failure queue URL are outputs (null where not deployed)."""
    outputs = module()["output"]
    assert (
        outputs["function_name"]["value"] == "${one(aws_lambda_function.trigger[*].function_name)}"
    )
    assert outputs["function_arn"]["value"] == "${one(aws_lambda_function.trigger[*].arn)}"
    assert outputs["segment_completions_mapping_id"]["value"] == (
        "${one(aws_lambda_event_source_mapping.segment_completions[*].uuid)}"
    )
    assert outputs["jobs_mapping_id"]["value"] == (
        "${one(aws_lambda_event_source_mapping.jobs[*].uuid)}"
    )
    assert outputs["on_failure_queue_url"]["value"] == "${one(aws_sqs_queue.on_failure[*].url)}"
    assert outputs["trigger_job_policy_json"]["value"] == (
        "${data.aws_iam_policy_document.trigger_job.json}"
    )
    assert outputs["stream_trigger_enabled"]["value"] == "${local.stream_trigger}"
    assert outputs["reconciler_function_name"]["value"] == (
        "${one(aws_lambda_function.reconciler[*].function_name)}"
    )
    assert outputs["reconcile_schedule_arn"]["value"] == (
        "${one(aws_scheduler_schedule.reconcile[*].arn)}"
    )
    assert outputs["alarm_names"]["value"] == "${local.alarm_names}"


# ------------------------------------------------------------------ a real plan

#: Where a locally installed AWS provider is found (terraform init -plugin-dir): the
#: Terraform registry is never reached.
PLUGIN_DIR = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
TERRAFORM = shutil.which("terraform")
#: Every AWS provider release installed there, oldest first: the plans below run
#: against each (5.x, and 6.x where installed: the pipeline's own root pins 6.x).
PROVIDER_VERSIONS = sorted(
    {
        path.parts[-3]
        for path in PLUGIN_DIR.glob(
            "registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*"
        )
    },
    key=lambda version: tuple(int(part) for part in re.findall(r"\d+", version)),
)
HAS_PROVIDER = bool(PROVIDER_VERSIONS)
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
needs_provider = pytest.mark.skipif(
    TERRAFORM is None or not HAS_PROVIDER,
    reason=f"terraform or a local AWS provider under {PLUGIN_DIR} (TF_PLUGIN_DIR) is missing",
)

#: The root module a pipeline would write, with the settings the plans below vary.
ROOT_MODULE = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}
provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "plan-only"
  secret_key                  = "plan-only"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}
variable "settings" {
  type    = any
  default = {}
}
module "reassembly_trigger" {
  source                             = "../terraform"
  deployment_zip_path                = lookup(var.settings, "zip", null)
  runtime                            = lookup(var.settings, "runtime", "python3.12")
  architecture                       = lookup(var.settings, "architecture", "x86_64")
  application_log_level              = lookup(var.settings, "application_log_level", "INFO")
  system_log_level                   = lookup(var.settings, "system_log_level", "WARN")
  batch_size                         = lookup(var.settings, "batch_size", 100)
  maximum_batching_window_in_seconds = lookup(var.settings, "window", 1)
  maximum_retry_attempts             = lookup(var.settings, "retries", 10)
  maximum_record_age_in_seconds      = lookup(var.settings, "record_age", 21600)
  stream_trigger_enabled             = lookup(var.settings, "stream_trigger", true)
  reconciler_reserved_concurrency = lookup(var.settings, "reconciler_reserved_concurrency", null)
  alarm_period_seconds               = lookup(var.settings, "alarm_period_seconds", 300)
  deadline_failures_alarm_evaluation_periods = lookup(var.settings, "deadline_periods", 3)
  timeout_seconds                    = lookup(var.settings, "timeout_seconds", 60)
  reconciler_timeout_seconds         = lookup(var.settings, "reconciler_timeout_seconds", 300)
  lock_lease_seconds                 = lookup(var.settings, "lock_lease_seconds", 900)
  evaluation_concurrency             = lookup(var.settings, "evaluation_concurrency", 16)
  lease_wait_seconds                 = lookup(var.settings, "lease_wait_seconds", 5)
  reconcile_min_age_seconds          = lookup(var.settings, "reconcile_min_age_seconds", 300)
  unclaimed_after_seconds            = lookup(var.settings, "unclaimed_after_seconds", 3600)
  metrics_namespace = lookup(var.settings, "metrics_namespace", "StereoSpot/ReassemblyTrigger")
  jobs_status_index_name = lookup(var.settings, "jobs_status_index_name", "status-created_at")
  jobs_table_name                    = lookup(var.settings, "jobs_table_name", "jobs")
  jobs_table_arn                     = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs"
  jobs_stream_arn = (lookup(var.settings, "jobs_stream", true)
  ? "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs/stream/x" : null)
  segment_completions_table_name = lookup(var.settings, "segment_completions_table_name", "sc")
  segment_completions_table_arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/sc"
  segment_completions_stream_arn = (lookup(var.settings, "completions_stream", true)
  ? "arn:aws:dynamodb:eu-west-1:123456789012:table/sc/stream/x" : null)
  reassembly_triggered_table_name = lookup(var.settings, "reassembly_triggered_table_name", "rt")
  reassembly_triggered_table_arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/rt"
  reassembly_queue_url = lookup(var.settings, "reassembly_queue_url",
  "https://sqs.eu-west-1.amazonaws.com/123456789012/r")
  reassembly_queue_arn = "arn:aws:sqs:eu-west-1:123456789012:r"
}
output "deployed" {
  value = module.reassembly_trigger.deployed
}
output "known" {
  value = {
    for name in [
      "stream_trigger_enabled", "trigger_job_policy_json", "function_name", "role_arn",
      "log_group_name", "on_failure_queue_url",
    ] : name => module.reassembly_trigger[name]
  }
}
"""

#: The pipeline's whole infrastructure in one root, as on a fresh checkout: the tables
#: are created in the same apply, so their stream ARNs are unknown at plan time.
FRESH_ROOT_MODULE = (
    ROOT_MODULE.split("variable", 1)[0]
    + """
variable "settings" {
  type    = any
  default = {}
}
resource "aws_dynamodb_table" "jobs" {
  name             = "jobs"
  billing_mode     = "PAY_PER_REQUEST"
  hash_key         = "job_id"
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"
  attribute {
    name = "job_id"
    type = "S"
  }
}
resource "aws_dynamodb_table" "segment_completions" {
  name             = "sc"
  billing_mode     = "PAY_PER_REQUEST"
  hash_key         = "job_id"
  range_key        = "segment_index"
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"
  attribute {
    name = "job_id"
    type = "S"
  }
  attribute {
    name = "segment_index"
    type = "N"
  }
}
resource "aws_sqs_queue" "reassembly" {
  name = "r"
}
module "reassembly_trigger" {
  source                          = "../terraform"
  deployment_zip_path             = lookup(var.settings, "zip", null)
  jobs_table_name                 = aws_dynamodb_table.jobs.name
  jobs_table_arn                  = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs"
  jobs_stream_arn                 = aws_dynamodb_table.jobs.stream_arn
  segment_completions_table_name  = aws_dynamodb_table.segment_completions.name
  segment_completions_table_arn   = aws_dynamodb_table.segment_completions.arn
  segment_completions_stream_arn  = aws_dynamodb_table.segment_completions.stream_arn
  reassembly_triggered_table_name = "rt"
  reassembly_triggered_table_arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/rt"
  reassembly_queue_url            = aws_sqs_queue.reassembly.url
  reassembly_queue_arn            = aws_sqs_queue.reassembly.arn
}
"""
)


@dataclass
class Plan:
    """One `terraform plan`: its exit code, its text and (on success) its JSON."""

    returncode: int
    text: str
    planned: dict[str, Any]

    def addresses(self, type_: str) -> list[str]:
        """Planned resource addresses of one type."""
        changes = self.planned.get("resource_changes", [])
        return sorted(c["address"] for c in changes if c["type"] == type_)

    def after(self, address: str) -> dict[str, Any]:
        """The planned values of one resource."""
        (change,) = [c for c in self.planned["resource_changes"] if c["address"] == address]
        values: dict[str, Any] = change["change"]["after"]
        return values


class Workspace:
    """A copy of the module beside a dist/ folder and a root module, initialised once."""

    def __init__(
        self, where: Path, root_module: str = ROOT_MODULE, provider: str | None = None
    ) -> None:
        self.where = where
        shutil.copytree(MODULE, where / "terraform")
        self.dist = where / "dist"
        self.dist.mkdir()
        self.root = where / "root"
        self.root.mkdir()
        if provider is not None:
            # Exactly this release of the installed ones (init would take the newest).
            pinned = f'aws = {{ source = "hashicorp/aws", version = "{provider}" }}'
            root_module = root_module.replace('aws = { source = "hashicorp/aws" }', pinned)
            assert pinned in root_module
        (self.root / "main.tf").write_text(root_module)
        init = self.run("init", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}")
        assert init.returncode == 0, init.stdout + init.stderr

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """terraform with no user configuration, no prompts, bounded in time."""
        env = {**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1"}
        env.pop("TF_PLUGIN_CACHE_DIR", None)
        return subprocess.run(
            [str(TERRAFORM), *arguments],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def plan(self, **settings: Any) -> Plan:
        """Plan with these settings; the JSON plan when it succeeds."""
        (self.root / "settings.auto.tfvars.json").write_text(json.dumps({"settings": settings}))
        result = self.run("plan", "-input=false", "-no-color", "-lock=false", "-out=plan.bin")
        text = result.stdout + result.stderr
        if result.returncode != 0:
            return Plan(result.returncode, text, {})
        shown = self.run("show", "-json", "plan.bin")
        assert shown.returncode == 0, shown.stderr
        return Plan(0, text, json.loads(shown.stdout))

    def build_zip(self, runtime: str, architecture: str, name: str | None = None) -> Path:
        """A small zip with a true manifest, written by scripts/make_zip.py."""
        staging = self.where / f"staging-{runtime}-{architecture}"
        staging.mkdir(exist_ok=True)
        (staging / "marker.py").write_text(f"TARGET = {runtime!r}, {architecture!r}\n")
        output = self.dist / (name or f"deploy-{runtime}-{architecture}.zip")
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "make_zip.py"),
                str(staging),
                str(output),
                *("--runtime", runtime, "--architecture", architecture),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return output


#: The releases the workspace fixture is made for (None: no provider, the plans skip).
WORKSPACE_PROVIDERS: list[str | None] = [*PROVIDER_VERSIONS] or [None]


@pytest.fixture(scope="module", params=WORKSPACE_PROVIDERS, ids=lambda v: f"aws-{v}")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Workspace:
    """The module, initialised against each local provider release in turn."""
    provider: str | None = request.param
    return Workspace(tmp_path_factory.mktemp("terraform"), provider=provider)


def test_every_installed_provider_release_is_one_the_module_accepts() -> None:
    """The plans run against every release in TF_PLUGIN_DIR: each must be within the
    module's bound (>= 5.32, < 7), or its workspace would not even initialise."""
    for version in PROVIDER_VERSIONS:
        major, minor = (int(part) for part in version.split(".")[:2])
        assert (5, 32) <= (major, minor) < (7, 0), version


@pytest.fixture(scope="module")
def fresh_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The module in a root that also creates the tables and the queue."""
    return Workspace(tmp_path_factory.mktemp("terraform-fresh"), FRESH_ROOT_MODULE)


@needs_terraform
def test_terraform_fmt_is_clean() -> None:
    """`terraform fmt -check` finds nothing to rewrite."""
    result = subprocess.run(
        [str(TERRAFORM), "fmt", "-check", "-recursive", "-no-color", str(MODULE)],
        env={**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
@needs_provider
def test_a_plan_without_the_zip_succeeds_plans_no_code_and_warns(workspace: Workspace) -> None:
    """GIVEN no zip WHEN planning THEN the plan succeeds with no function, mapping,
    schedule or function alarm, `deployed` is false, and a warning names the build."""
    plan = workspace.plan()
    assert plan.returncode == 0, plan.text
    assert plan.addresses("aws_lambda_function") == []
    assert plan.addresses("aws_lambda_event_source_mapping") == []
    assert plan.addresses("aws_scheduler_schedule") == []
    assert plan.addresses("aws_cloudwatch_dashboard") == []
    assert plan.addresses("aws_cloudwatch_metric_alarm") == [
        "module.reassembly_trigger.aws_cloudwatch_metric_alarm.on_failure_messages[0]"
    ]
    assert plan.addresses("aws_sqs_queue") == [
        "module.reassembly_trigger.aws_sqs_queue.on_failure[0]"
    ]
    assert plan.planned["planned_values"]["outputs"]["deployed"]["value"] is False
    assert "Warning: Check block assertion failed" in plan.text
    assert "bash scripts/build_deploy_zip.sh" in " ".join(plan.text.split())


@pytest.mark.slow
@needs_provider
def test_a_plan_with_the_built_zip_plans_everything(workspace: Workspace) -> None:
    """GIVEN the zip (and manifest) for the default target WHEN planning THEN both
    functions, both mappings on their own aliases, the schedule, twelve alarms and a
    dashboard whose body names every alarm and each mapping's iterator age."""
    zip_path = workspace.build_zip("python3.12", "x86_64")
    try:
        plan = workspace.plan()
    finally:
        zip_path.unlink()
    assert plan.returncode == 0, plan.text
    prefix = "module.reassembly_trigger."
    assert plan.addresses("aws_lambda_function") == [
        f"{prefix}aws_lambda_function.reconciler[0]",
        f"{prefix}aws_lambda_function.trigger[0]",
    ]
    assert len(plan.addresses("aws_lambda_event_source_mapping")) == 2
    assert len(plan.addresses("aws_cloudwatch_metric_alarm")) == 12
    # No reserved concurrency by default: the provider's -1 (unreserved).
    reconciler = plan.after(f"{prefix}aws_lambda_function.reconciler[0]")
    assert reconciler["reserved_concurrent_executions"] == -1
    namespace = "StereoSpot/ReassemblyTrigger"
    for address, metric, function in (
        ("deadline_failures[0]", "FailedDeadline", "stereo-spot-reassembly-trigger"),
        ("reconciler_truncated[0]", "Truncated", "stereo-spot-reassembly-trigger-reconciler"),
    ):
        planned = plan.after(f"{prefix}aws_cloudwatch_metric_alarm.{address}")
        assert (planned["namespace"], planned["metric_name"]) == (namespace, metric)
        assert planned["dimensions"] == {"FunctionName": function}
        assert planned["evaluation_periods"] == 3
    schedule = plan.after(f"{prefix}aws_scheduler_schedule.reconcile[0]")
    assert (schedule["schedule_expression"], schedule["state"]) == ("rate(5 minutes)", "ENABLED")
    trigger = plan.after(f"{prefix}aws_lambda_function.trigger[0]")
    assert trigger["logging_config"][0]["application_log_level"] == "INFO"
    assert set(trigger["environment"][0]["variables"]) == CORE_ENVIRONMENT
    body = json.loads(plan.after(f"{prefix}aws_cloudwatch_dashboard.trigger[0]")["dashboard_body"])
    (alarms,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) == 12
    assert all(
        a.startswith("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:")
        for a in alarms["properties"]["alarms"]
    )
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    for metric in (m for w in graphs for m in w["properties"]["metrics"]):
        # CloudWatch's form: [namespace, name, dimension, value, ..., {options}].
        assert isinstance(metric, list), metric
        assert all(isinstance(part, str) for part in metric[:-1]), metric
        assert isinstance(metric[-1], dict), metric
        assert len(metric) % 2 == 1, metric
    resources = {
        tuple(m[:6])
        for w in body["widgets"]
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if m[1] == "IteratorAge"
    }
    name = "stereo-spot-reassembly-trigger"
    assert resources == {
        ("AWS/Lambda", "IteratorAge", "FunctionName", name, "Resource", f"{name}:live"),
        ("AWS/Lambda", "IteratorAge", "FunctionName", name, "Resource", f"{name}:live-jobs"),
    }


@pytest.mark.slow
@needs_provider
def test_a_zip_built_for_another_architecture_is_refused_at_plan_time(
    workspace: Workspace,
) -> None:
    """GIVEN the x86_64 zip named as the zip of an arm64 function WHEN planning THEN the
    plan fails naming both architectures and the build command for arm64."""
    zip_path = workspace.build_zip("python3.12", "x86_64", "deploy.zip")
    try:
        plan = workspace.plan(architecture="arm64", zip="../dist/deploy.zip")
    finally:
        zip_path.unlink()
    text = " ".join(plan.text.split())
    assert plan.returncode == 1
    assert "The zip was built for architecture x86_64 but architecture = arm64" in text
    assert "RUNTIME=python3.12 ARCH=arm64 bash scripts/build_deploy_zip.sh" in text


@pytest.mark.slow
@needs_provider
def test_values_outside_lambdas_limits_are_refused_at_plan_time(workspace: Workspace) -> None:
    """Batch size 0, a 301 s window, WARN application logs, ERROR system logs, infinite
    retries and record age: the plan fails and names each variable."""
    plan = workspace.plan(
        batch_size=0,
        window=301,
        application_log_level="WARN",
        system_log_level="ERROR",
        retries=-1,
        record_age=-1,
    )
    text = " ".join(plan.text.split())
    assert plan.returncode == 1
    assert "would drop the EMF metric lines" in text
    for message in (
        "batch_size must be a whole number from 1 to 10000",
        "maximum_batching_window_in_seconds must be a whole number from 0 to 300",
        "system_log_level must be DEBUG, INFO or WARN",
        "maximum_retry_attempts must be finite",
        "maximum_record_age_in_seconds must be finite",
    ):
        assert message in text, message


@pytest.mark.slow
@needs_provider
def test_the_plan_refuses_every_setting_the_code_would_refuse_at_start_up(
    workspace: Workspace,
) -> None:
    """GIVEN each whole-number setting one below or one above its bounds (the code's,
    found by asking Settings.from_env; the timeouts': 2 and 900) or with a fraction, and
    each name the code requires blank WHEN planning THEN the plan fails with every
    variable's message; and the code refuses each of those values too (the edges
    themselves pass: test_the_plan_accepts_the_edges_...)."""
    bounds = terraform_whole_number_bounds()
    env_of = {variable: env for env, variable in environment_variables().items()}
    names = [environment_variables()[env] for env in REQUIRED_VARIABLES]
    cases: dict[str, dict[str, Any]] = {
        "below": {name: low - 1 for name, (low, _) in bounds.items()},
        "above": {name: high + 1 for name, (_, high) in bounds.items()},
        "fraction": {name: low + 0.5 for name, (low, _) in bounds.items()},
    }
    # Blank names ride along with the first plan (other variables: each error is said).
    # And a reserved concurrency of 0, which would throttle every reconciler run.
    blank: dict[str, Any] = {
        **dict.fromkeys(names, "  "),
        "metrics_namespace": "",
        "jobs_status_index_name": " x",
        "reconciler_reserved_concurrency": 0,
    }
    for case, values in cases.items():
        for name, value in values.items():
            if name in env_of:
                assert not code_accepts(env_of[name], str(value)), (case, name, value)
        plan = workspace.plan(**values, **(blank if case == "below" else {}))
        text = " ".join(plan.text.split())
        assert plan.returncode == 1, (case, plan.text)
        messages = [whole_number_message(name, *pair) for name, pair in bounds.items()]
        if case == "below":
            messages += [f"{name} must not be empty" for name in names]
            messages += [
                f"{name} must be non-empty"
                for name in ("metrics_namespace", "jobs_status_index_name")
            ]
            messages.append("reconciler_reserved_concurrency must be null")
        assert [m for m in messages if m not in text] == [], (case, text)


@pytest.mark.slow
@needs_provider
@pytest.mark.parametrize("edge", ["low", "high"])
def test_the_plan_accepts_the_edges_and_the_functions_would_start_with_them(
    workspace: Workspace, edge: str
) -> None:
    """GIVEN every whole-number setting at its lowest (or highest) accepted value, the
    timeouts included WHEN planning with the zip THEN the plan succeeds, both functions
    get those values, and Settings.from_env starts with the planned environment."""
    bounds = terraform_whole_number_bounds()
    values = {name: pair[0 if edge == "low" else 1] for name, pair in bounds.items()}
    zip_path = workspace.build_zip("python3.12", "x86_64")
    try:
        plan = workspace.plan(**values)
    finally:
        zip_path.unlink()
    assert plan.returncode == 0, plan.text
    prefix = "module.reassembly_trigger.aws_lambda_function."
    for function, timeout in (
        ("trigger", "timeout_seconds"),
        ("reconciler", "reconciler_timeout_seconds"),
    ):
        planned = plan.after(f"{prefix}{function}[0]")
        assert planned["timeout"] == values[timeout]
        environment = planned["environment"][0]["variables"]
        settings = Settings.from_env(environment)
        for env, variable in environment_variables().items():
            if variable in values:
                assert getattr(settings, env.lower()) == values[variable], env


@pytest.mark.slow
@needs_provider
def test_an_alarm_longer_than_cloudwatch_allows_is_refused_at_plan_time(
    workspace: Workspace,
) -> None:
    """GIVEN the zip and 289 five-minute periods for the deadline alarm (CloudWatch's
    limit is one day: 288) WHEN planning THEN the plan fails naming the limit."""
    zip_path = workspace.build_zip("python3.12", "x86_64")
    try:
        plan = workspace.plan(deadline_periods=289)
    finally:
        zip_path.unlink()
    text = " ".join(plan.text.split())
    assert plan.returncode == 1
    assert (
        "deadline_failures_alarm_evaluation_periods = 289 with alarm_period_seconds = 300:"
        " CloudWatch allows at most 288 periods"
    ) in text


def _as_list(value: str | list[str]) -> list[str]:
    """An IAM JSON field that is a string when it holds one value."""
    return [value] if isinstance(value, str) else value


@pytest.mark.slow
@needs_provider
def test_a_plan_for_trigger_on_write_alone_plans_the_reconciler_and_nothing_of_the_stream(
    workspace: Workspace,
) -> None:
    """GIVEN the zip and stream_trigger_enabled = false with no stream ARN WHEN planning
    THEN the reconciler, its alias, schedule and four alarms are planned, no stream
    function, role, log group, mapping or queue; the dashboard shows only the
    reconciler; and the output policy grants a worker exactly the code's calls."""
    zip_path = workspace.build_zip("python3.12", "x86_64")
    try:
        plan = workspace.plan(
            stream_trigger=False,
            completions_stream=False,
            jobs_stream=False,
            reconciler_reserved_concurrency=1,
        )
    finally:
        zip_path.unlink()
    assert plan.returncode == 0, plan.text
    assert "Warning" not in plan.text
    prefix = "module.reassembly_trigger."
    assert plan.addresses("aws_lambda_function") == [f"{prefix}aws_lambda_function.reconciler[0]"]
    reconciler = plan.after(f"{prefix}aws_lambda_function.reconciler[0]")
    assert reconciler["reserved_concurrent_executions"] == 1
    assert plan.addresses("aws_lambda_alias") == [f"{prefix}aws_lambda_alias.reconciler_live[0]"]
    assert plan.addresses("aws_lambda_event_source_mapping") == []
    assert plan.addresses("aws_sqs_queue") == []
    assert plan.addresses("aws_iam_role") == [
        f"{prefix}aws_iam_role.reconciler",
        f"{prefix}aws_iam_role.schedule[0]",
    ]
    assert plan.addresses("aws_cloudwatch_log_group") == [
        f"{prefix}aws_cloudwatch_log_group.reconciler"
    ]
    assert plan.addresses("aws_cloudwatch_metric_alarm") == [
        f'{prefix}aws_cloudwatch_metric_alarm.function_errors["reconciler"]',
        f"{prefix}aws_cloudwatch_metric_alarm.reconciler_enqueued[0]",
        f"{prefix}aws_cloudwatch_metric_alarm.reconciler_truncated[0]",
        f"{prefix}aws_cloudwatch_metric_alarm.unclaimed[0]",
    ]
    schedule = plan.after(f"{prefix}aws_scheduler_schedule.reconcile[0]")
    assert (schedule["schedule_expression"], schedule["state"]) == ("rate(5 minutes)", "ENABLED")
    enqueued = plan.after(f"{prefix}aws_cloudwatch_metric_alarm.reconciler_enqueued[0]")
    assert "trigger_job" in enqueued["alarm_description"]
    assert "stream" not in enqueued["alarm_description"]

    body = json.loads(plan.after(f"{prefix}aws_cloudwatch_dashboard.trigger[0]")["dashboard_body"])
    (alarms,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) == 4
    metrics = [
        m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]
    ]
    assert metrics
    assert {m[3] for m in metrics} == {"stereo-spot-reassembly-trigger-reconciler"}
    assert not [w for w in body["widgets"] if "Stream" in w["properties"]["title"]]

    outputs = plan.planned["planned_values"]["outputs"]["known"]["value"]
    assert outputs["stream_trigger_enabled"] is False
    for name in ("function_name", "role_arn", "log_group_name", "on_failure_queue_url"):
        assert outputs.get(name) is None, name
    worker = json.loads(outputs["trigger_job_policy_json"])
    assert {
        s["Sid"]: (sorted(_as_list(s["Action"])), s["Resource"]) for s in worker["Statement"]
    } == {
        "ReadJobs": (
            ["dynamodb:BatchGetItem"],
            "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs",
        ),
        "CountSegmentCompletions": (
            ["dynamodb:Query"],
            "arn:aws:dynamodb:eu-west-1:123456789012:table/sc",
        ),
        "HoldTheReassemblyLock": (
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            "arn:aws:dynamodb:eu-west-1:123456789012:table/rt",
        ),
        "StartReassembly": (["sqs:SendMessage"], "arn:aws:sqs:eu-west-1:123456789012:r"),
    }
    assert {s["Effect"] for s in worker["Statement"]} == {"Allow"}


@pytest.mark.slow
@needs_provider
def test_a_jobs_stream_without_the_stream_trigger_is_refused_at_plan_time(
    workspace: Workspace,
) -> None:
    """GIVEN stream_trigger_enabled = false and a jobs_stream_arn WHEN planning THEN the
    plan fails naming jobs_stream_arn and what to do instead (zip or not)."""
    plan = workspace.plan(stream_trigger=False, completions_stream=False, jobs_stream=True)
    text = " ".join(plan.text.split())
    assert plan.returncode == 1
    assert "jobs_stream_arn needs the stream function (stream_trigger_enabled = true)" in text


@pytest.mark.slow
@needs_provider
def test_the_whole_infrastructure_at_once_plans_without_the_zip(
    fresh_workspace: Workspace,
) -> None:
    """GIVEN the tables created in the same apply (stream ARNs unknown at plan time), a
    Jobs mapping asked for and no zip WHEN planning THEN the plan succeeds: no gate
    waits on an unknown ARN (this failed with `Invalid count argument` before)."""
    plan = fresh_workspace.plan()
    assert plan.returncode == 0, plan.text
    assert plan.addresses("aws_lambda_function") == []
    assert len(plan.addresses("aws_dynamodb_table")) == 2
    assert "Warning: Check block assertion failed" in plan.text


@pytest.mark.slow
@needs_provider
def test_with_the_zip_a_jobs_table_created_in_the_same_apply_needs_it_applied_first(
    fresh_workspace: Workspace,
) -> None:
    """GIVEN the zip and a Jobs table created in the same apply WHEN planning THEN
    Terraform cannot count the Jobs mapping (its ARN's null-ness is unknown), as
    terraform/README.md says, with the remedy it gives (-target the table first)."""
    zip_path = fresh_workspace.build_zip("python3.12", "x86_64")
    try:
        plan = fresh_workspace.plan(zip="../dist/deploy-python3.12-x86_64.zip")
    finally:
        zip_path.unlink()
    assert plan.returncode == 1
    assert "Invalid count argument" in plan.text
    assert 'resource "aws_lambda_alias" "live_jobs"' in plan.text
    readme = " ".join((MODULE / "README.md").read_text().split())
    assert "Invalid count argument" in readme
    assert "-target=aws_dynamodb_table.jobs" in readme


def test_the_docs_name_the_functions_log_groups_and_zip_the_module_and_build_use() -> None:
    """Every literal function name or log group in the README, the module's README and
    docs/ is the module's default, and the README names the per-target zip that
    `dist/deploy.zip` (the copy the monorepo's Terraform reads) is made from."""
    texts = {
        "README.md": (ROOT / "README.md").read_text(),
        "terraform/README.md": (MODULE / "README.md").read_text(),
        **{f"docs/{p.name}": p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))},
    }
    assert "docs/operations.md" in texts
    name = default("function_name")
    allowed = {name, f"{name}-reconciler"}
    for where, text in texts.items():
        # A name with a placeholder (the monorepo's `stereo-spot-<env>-...`) is not ours.
        groups = [g for g in re.findall(r"/aws/lambda/([\w<>-]+)", text) if "<" not in g]
        functions = [f for f in re.findall(r"--function-name ([\w<>-]+)", text) if "<" not in f]
        assert set(groups) | set(functions) <= allowed, where
        if where == "README.md":  # the build's own page names the zip it copies
            assert "deploy-<runtime>-<arch" in text, where
    assert f"/aws/lambda/{name}" in texts["docs/operations.md"]
    assert f"/aws/lambda/{name}" in texts["README.md"].split("section:operations")[1]
    from reassembly_trigger.local.invocations.contexts import DEFAULT_FUNCTION_NAME

    assert name == DEFAULT_FUNCTION_NAME


#: Fields of the reconciler's summary, the manifest and log lines that the docs name
#: with a variable-like suffix; not module variables.
NOT_VARIABLES = {"age_seconds", "duration_ms", "python_version", "latency_ms", "waited_seconds"}


def test_the_docs_name_only_variables_the_module_has() -> None:
    """A setting the docs name in backticks with a variable's suffix is a variable of the
    module (operations.md named `reconcile_timeout_seconds`, which does not exist)."""
    suffixes = "seconds|ms|mb|threshold|periods|enabled|version|level|arns?|name|concurrency"
    variables = set(module()["variable"])
    for path in (ROOT / "README.md", MODULE / "README.md", ROOT / "docs" / "operations.md"):
        named = set(re.findall(rf"`([a-z][a-z0-9_]*_(?:{suffixes}))`", path.read_text()))
        assert named - variables - NOT_VARIABLES == set(), path.name


@pytest.mark.parametrize(
    ("type_", "name", "attribute", "limit"),
    [
        ("aws_lambda_function", "trigger", "function_name", 64),
        ("aws_lambda_function", "reconciler", "function_name", 64),
        ("aws_iam_role", "trigger", "name", 64),
        ("aws_iam_role", "reconciler", "name", 64),
        ("aws_iam_role", "schedule", "name", 64),
        ("aws_scheduler_schedule", "reconcile", "name", 64),
        ("aws_sqs_queue", "on_failure", "name", 80),
        ("aws_iam_role_policy", "reconciler", "name", 128),
        ("aws_iam_role_policy", "schedule", "name", 128),
    ],
)
def test_every_derived_name_fits_awss_limit_for_the_longest_function_name(
    type_: str, name: str, attribute: str, limit: int
) -> None:
    """With the longest function_name the validation accepts, each name built from it is
    within its AWS limit (so a valid name never fails at apply)."""
    (validation,) = validations("function_name")
    bound = re.search(r"\{1,(\d+)\}", validation["condition"])
    assert bound is not None
    longest = int(bound.group(1))
    template = str(resource(type_, name)[attribute])
    value = template.replace("${local.reconciler_name}", "${var.function_name}-reconciler")
    value = value.replace("${var.function_name}", "f" * longest)
    assert "${" not in value, value
    assert len(value) <= limit, (value, limit)
