"""The Terraform module, read as data: what it deploys, what it grants, what it filters.

Every `.tf` file under terraform/ is parsed with python-hcl2; the stream filters are
evaluated against the contract's events with moto's implementation of AWS event
patterns, and the granted actions are compared with the boto3 calls the code makes.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from moto.events.models import EventPattern

from reassembly_trigger.settings import ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "terraform"
CONTRACT_EVENTS = ROOT / "tests" / "events"  # copies of ../shared/contract/events
#: Statements for what Lambda does with the function's role (not the code's own calls).
SERVICE_STATEMENTS = {"ReadTheStreams", "ListStreams", "ReportGivenUpBatches", "WriteOwnLogs"}


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
    """Every block of every .tf file: {"resource": {type: {name: body}}, "variable": ...}."""
    merged: dict[str, Any] = {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = plain(hcl2.load(handle))
        for kind, blocks in parsed.items():
            for block in blocks:
                if kind in ("resource", "data"):
                    for type_, named in block.items():
                        merged.setdefault(kind, {}).setdefault(type_, {}).update(named)
                elif kind == "locals":
                    merged.setdefault(kind, {}).update(block)
                else:
                    merged.setdefault(kind, {}).update(block)
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


def function_statements() -> dict[str, dict[str, Any]]:
    """The function's policy statements by sid, dynamic ones included."""
    document = module()["data"]["aws_iam_policy_document"]["trigger"]
    statements = {s["sid"]: s for s in document["statement"]}
    for dynamic in document.get("dynamic", []):
        content = block(dynamic["statement"], "content")
        statements[content["sid"]] = content
    return statements


def contract_records(name: str) -> list[dict[str, Any]]:
    """The records of one of the contract's sample events."""
    records: list[dict[str, Any]] = json.loads((CONTRACT_EVENTS / name).read_text())["Records"]
    return records


# ------------------------------------------------------------------ layout


def test_the_module_has_its_files_and_each_parses() -> None:
    """main, variables, outputs, iam and versions exist, and python-hcl2 parses them all."""
    names = {path.name for path in MODULE.glob("*.tf")}
    assert {"main.tf", "variables.tf", "outputs.tf", "iam.tf", "versions.tf"} <= names
    assert (MODULE / "README.md").is_file()
    assert module()["resource"]


def test_the_readme_example_passes_every_required_variable() -> None:
    """The README's example call sets every variable that has no default."""
    readme = (MODULE / "README.md").read_text()
    example = readme.split('module "reassembly_trigger" {', 1)[1].split("\n}\n", 1)[0]
    required = {name for name, spec in module()["variable"].items() if "default" not in spec}
    assert required
    assert {name for name in required if not re.search(rf"^\s*{name}\s*=", example, re.M)} == set()


# ------------------------------------------------------------------ the function


def test_the_function_runs_the_built_zip_with_the_handler_the_code_defines() -> None:
    """The zip defaults to dist/deploy.zip, its hash drives updates, the handler is ours."""
    function = resource("aws_lambda_function", "trigger")
    zip_path = module()["locals"]["deployment_zip_path"]
    assert zip_path == '${coalesce(var.deployment_zip_path, "${path.module}/../dist/deploy.zip")}'
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
    """Timeout (60 s by default) and memory are variables; logs are JSON in our group."""
    function = resource("aws_lambda_function", "trigger")
    assert function["timeout"] == "${var.timeout_seconds}"
    assert default("timeout_seconds") == 60
    assert function["memory_size"] == "${var.memory_size_mb}"
    logging = block(function, "logging_config")
    assert logging["log_format"] == "JSON"
    assert logging["log_group"] == "${aws_cloudwatch_log_group.trigger.name}"


def test_every_environment_variable_the_code_reads_is_set() -> None:
    """The function's environment is exactly settings.ENVIRONMENT_VARIABLES."""
    variables = block(resource("aws_lambda_function", "trigger"), "environment")["variables"]
    assert set(variables) == set(ENVIRONMENT_VARIABLES)
    assert all(value.startswith("${") for value in variables.values())
    assert variables["LOCK_LEASE_SECONDS"] == "${tostring(var.lock_lease_seconds)}"


def test_the_log_group_is_the_functions_and_has_a_retention() -> None:
    """Logs go to /aws/lambda/<function> and expire."""
    group = resource("aws_cloudwatch_log_group", "trigger")
    assert group["name"] == "/aws/lambda/${var.function_name}"
    assert group["retention_in_days"] == "${var.log_retention_days}"
    assert isinstance(default("log_retention_days"), int)


# ------------------------------------------------------------------ the mappings


@pytest.mark.parametrize("mapping", ["segment_completions", "jobs"])
def test_a_mapping_reports_partial_failures_bisects_and_gives_up_finitely(mapping: str) -> None:
    """ReportBatchItemFailures, bisect on error, finite retries and record age, and the
    given-up batches' metadata to the on-failure queue."""
    esm = resource("aws_lambda_event_source_mapping", mapping)
    assert esm["function_response_types"] == ["ReportBatchItemFailures"]
    assert esm["bisect_batch_on_function_error"] is True
    assert esm["maximum_retry_attempts"] == "${var.maximum_retry_attempts}"
    assert esm["maximum_record_age_in_seconds"] == "${var.maximum_record_age_in_seconds}"
    assert 0 <= default("maximum_retry_attempts") <= 10000
    assert 60 <= default("maximum_record_age_in_seconds") <= 604800
    on_failure = block(block(esm, "destination_config"), "on_failure")
    assert on_failure["destination_arn"] == "${aws_sqs_queue.on_failure.arn}"
    assert esm["starting_position"] == "LATEST"
    assert esm["function_name"] == "${aws_lambda_alias.live.arn}"


@pytest.mark.parametrize("setting", ["maximum_retry_attempts", "maximum_record_age_in_seconds"])
def test_infinite_retries_are_refused_by_validation(setting: str) -> None:
    """-1 (retry forever, which would block the shard) fails the variable's validation."""
    (validation,) = module()["variable"][setting]["validation"]
    assert f"var.{setting} >= " in validation["condition"]
    assert "-1" in validation["error_message"]


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


def test_the_jobs_mapping_exists_only_with_a_jobs_stream() -> None:
    """count is 0 unless jobs_stream_arn is given."""
    esm = resource("aws_lambda_event_source_mapping", "jobs")
    assert esm["count"] == "${var.jobs_stream_arn == null ? 0 : 1}"
    assert esm["event_source_arn"] == "${var.jobs_stream_arn}"
    assert default("jobs_stream_arn") is None


def _filter_pattern(mapping: str) -> EventPattern:
    esm = resource("aws_lambda_event_source_mapping", mapping)
    pattern = block(block(esm, "filter_criteria"), "filter")["pattern"]
    local = re.fullmatch(r"\$\{jsonencode\(local\.(\w+)\)\}", pattern)
    assert local, pattern
    return EventPattern.load(json.dumps(module()["locals"][local.group(1)]))


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
    assert module()["locals"]["segment_completion_filter"] == {
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


# ------------------------------------------------------------------ IAM


def test_no_statement_grants_a_wildcard_action() -> None:
    """Every action is named in full."""
    for statements in (function_statements(), _assume_role_statements()):
        for sid, statement in statements.items():
            assert [a for a in statement["actions"] if "*" in a] == [], sid


def _assume_role_statements() -> dict[str, dict[str, Any]]:
    document = module()["data"]["aws_iam_policy_document"]["assume_role"]
    return {s["sid"]: s for s in document["statement"]}


def test_each_statement_is_scoped_to_its_own_resources() -> None:
    """Each statement's actions on exactly its resource; "*" only for ListStreams."""
    expected = {
        "ReadJobs": (["dynamodb:BatchGetItem"], ["${var.jobs_table_arn}"]),
        "CountSegmentCompletions": (["dynamodb:Query"], ["${var.segment_completions_table_arn}"]),
        "HoldTheReassemblyLock": (
            ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
            ["${var.reassembly_triggered_table_arn}"],
        ),
        "StartReassembly": (["sqs:SendMessage"], ["${var.reassembly_queue_arn}"]),
        "ReadTheStreams": (
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            "${local.stream_arns}",
        ),
        "ListStreams": (["dynamodb:ListStreams"], ["*"]),
        "ReportGivenUpBatches": (["sqs:SendMessage"], ["${aws_sqs_queue.on_failure.arn}"]),
        "WriteOwnLogs": (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            ["${aws_cloudwatch_log_group.trigger.arn}:*"],
        ),
        "UseCustomerManagedKeys": (["kms:Decrypt", "kms:GenerateDataKey"], "${statement.value}"),
    }
    statements = function_statements()
    assert {sid: (s["actions"], s["resources"]) for sid, s in statements.items()} == expected
    assert all(s["effect"] == "Allow" for s in statements.values())
    stream_arns = module()["locals"]["stream_arns"]
    assert stream_arns == "${compact([var.segment_completions_stream_arn, var.jobs_stream_arn])}"


def test_the_kms_statement_appears_only_when_keys_are_given() -> None:
    """No KMS permission unless kms_key_arns lists keys."""
    document = module()["data"]["aws_iam_policy_document"]["trigger"]
    (dynamic,) = document["dynamic"]
    assert dynamic["statement"]["for_each"] == (
        "${length(var.kms_key_arns) > 0 ? [var.kms_key_arns] : []}"
    )
    assert default("kms_key_arns") == []


def test_the_code_gets_exactly_the_actions_it_calls() -> None:
    """The boto3 calls in the Lambda's modules (local/ excluded) are the actions granted
    to the code: nothing missing, nothing extra (GetItem on Jobs is not called, so not
    granted)."""
    called = set()
    for path in (ROOT / "reassembly_trigger").glob("*.py"):
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


def test_no_cloudwatch_metrics_permission_is_needed() -> None:
    """Metrics are EMF lines on stdout, so the policy grants no cloudwatch: action."""
    actions = [a for s in function_statements().values() for a in s["actions"]]
    assert not [a for a in actions if a.startswith("cloudwatch:")]
    code = "".join(p.read_text() for p in (ROOT / "reassembly_trigger").glob("*.py"))
    assert "put_metric_data" not in code


# ------------------------------------------------------------------ outputs


def test_outputs_name_the_function_the_mappings_and_the_failure_queue() -> None:
    """Function name/ARN, both mapping ids and the on-failure queue URL are outputs."""
    outputs = module()["output"]
    assert outputs["function_name"]["value"] == "${aws_lambda_function.trigger.function_name}"
    assert outputs["function_arn"]["value"] == "${aws_lambda_function.trigger.arn}"
    assert outputs["segment_completions_mapping_id"]["value"] == (
        "${aws_lambda_event_source_mapping.segment_completions.uuid}"
    )
    assert outputs["jobs_mapping_id"]["value"] == (
        "${one(aws_lambda_event_source_mapping.jobs[*].uuid)}"
    )
    assert outputs["on_failure_queue_url"]["value"] == "${aws_sqs_queue.on_failure.url}"
