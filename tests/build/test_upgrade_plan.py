"""docs/upgrade.md, way (b), planned for real: the monorepo's lambda.tf replaced by this
project's module, with root-level `moved` blocks, on a state holding what the running
deployment has (the contract, "Where this package lives").

Offline, as tests/build/test_terraform.py plans: the local AWS provider, fake credentials,
`-refresh=false` (the state is taken as AWS's truth, nothing is read). The root module
is shaped like packages/aws-infra: the tables and the queue are the root's (here fixed
names and ARNs), lambda.tf its role, policy, `aws_lambda_function.reassembly_trigger[0]`
and `aws_lambda_event_source_mapping.segment_completions_stream[0]` (counted on the zip).
The plan of the migration must update the function and the mapping in place (a
replaced mapping would start again at LATEST and skip what was written meanwhile) and
replace exactly the role and its policy, whose names the module derives from the
function's name (IAM names cannot change in place): what the guide says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_terraform import ROOT_MODULE, Plan, Workspace, needs_provider

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "upgrade.md"
PREFIX = "stereo-spot-dev"
FUNCTION = f"{PREFIX}-reassembly-trigger"
ACCOUNT, REGION = "123456789012", "eu-west-1"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{PREFIX}-segment-completions/stream/x"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{PREFIX}-reassembly"
PROVIDER = ROOT_MODULE[: ROOT_MODULE.index('variable "settings"')]

#: What stands for packages/aws-infra's tables and queue (their names and ARNs).
INFRA = f"""
variable "settings" {{
  type    = any
  default = {{}}
}}
locals {{
  name       = "{PREFIX}"
  region     = "{REGION}"
  account_id = "{ACCOUNT}"
  tables = {{
    for key in ["jobs", "segment-completions", "reassembly-triggered"] :
    key => "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{PREFIX}-${{key}}"
  }}
  completions_stream_arn = "{STREAM_ARN}"
  queue_arn              = "arn:aws:sqs:{REGION}:{ACCOUNT}:{PREFIX}-reassembly"
  queue_url              = "{QUEUE_URL}"
  environment = {{
    JOBS_TABLE_NAME                 = "{PREFIX}-jobs"
    SEGMENT_COMPLETIONS_TABLE_NAME  = "{PREFIX}-segment-completions"
    REASSEMBLY_TRIGGERED_TABLE_NAME = "{PREFIX}-reassembly-triggered"
    REASSEMBLY_QUEUE_URL            = "{QUEUE_URL}"
  }}
}}
"""

#: The guide's references to packages/aws-infra, and what stands for them here (the
#: module beside the root, as ../reassembly-trigger/terraform is beside aws-infra).
STAND_INS = {
    "../reassembly-trigger/terraform": "../terraform",
    "../reassembly-trigger/dist/deploy.zip": "../dist/deploy.zip",
    "aws_dynamodb_table.jobs.name": f'"{PREFIX}-jobs"',
    "aws_dynamodb_table.jobs.arn": 'local.tables["jobs"]',
    "aws_dynamodb_table.segment_completions.name": f'"{PREFIX}-segment-completions"',
    "aws_dynamodb_table.segment_completions.arn": 'local.tables["segment-completions"]',
    "aws_dynamodb_table.segment_completions.stream_arn": "local.completions_stream_arn",
    "aws_dynamodb_table.reassembly_triggered.name": f'"{PREFIX}-reassembly-triggered"',
    "aws_dynamodb_table.reassembly_triggered.arn": 'local.tables["reassembly-triggered"]',
    "aws_sqs_queue.reassembly.url": "local.queue_url",
    "aws_sqs_queue.reassembly.arn": "local.queue_arn",
}

#: The running deployment's lambda.tf, as the contract describes it.
LEGACY_LAMBDA_TF = """
locals {
  reassembly_trigger_zip = "${path.module}/../dist/deploy.zip"
}
resource "aws_iam_role" "reassembly_trigger_lambda" {
  name = "${local.name}-reassembly-trigger-lambda"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Action = "sts:AssumeRole", Effect = "Allow",
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
}
resource "aws_iam_role_policy" "reassembly_trigger_lambda" {
  name = "reassembly-trigger-lambda"
  role = aws_iam_role.reassembly_trigger_lambda.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["dynamodb:GetItem"], Resource = local.tables["jobs"] },
      { Effect = "Allow", Action = ["dynamodb:Query"],
        Resource = local.tables["segment-completions"] },
      { Effect = "Allow", Action = ["dynamodb:PutItem"],
        Resource = local.tables["reassembly-triggered"] },
      { Effect = "Allow", Action = ["sqs:SendMessage"], Resource = local.queue_arn },
    ]
  })
}
resource "aws_lambda_function" "reassembly_trigger" {
  count            = fileexists(local.reassembly_trigger_zip) ? 1 : 0
  function_name    = "${local.name}-reassembly-trigger"
  role             = aws_iam_role.reassembly_trigger_lambda.arn
  handler          = "reassembly_trigger.handler.lambda_handler"
  runtime          = "python3.12"
  filename         = local.reassembly_trigger_zip
  source_code_hash = filebase64sha256(local.reassembly_trigger_zip)
  timeout          = 30
  memory_size      = 256
  environment {
    variables = local.environment
  }
}
resource "aws_lambda_event_source_mapping" "segment_completions_stream" {
  count             = fileexists(local.reassembly_trigger_zip) ? 1 : 0
  event_source_arn  = local.completions_stream_arn
  function_name     = aws_lambda_function.reassembly_trigger[0].function_name
  starting_position = "LATEST"
  batch_size        = 100
}
"""


def guide_hcl(heading: str) -> str:
    """The first ```hcl block after `heading` in docs/upgrade.md (the guide is the test's
    input: what it tells an operator to write is what is planned here)."""
    text = GUIDE.read_text()
    after = text[text.index(heading) :]
    found = re.search(r"```hcl\n(.*?)```", after, re.DOTALL)
    assert found, f"no hcl block after {heading!r}"
    return found.group(1)


def _resource(type_: str, name: str, attributes: dict[str, Any], index: int | None = None):
    instance: dict[str, Any] = {"schema_version": 0, "attributes": attributes}
    if index is not None:
        instance["index_key"] = index
    return {
        "mode": "managed",
        "type": type_,
        "name": name,
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [instance],
    }


def legacy_state(zip_hash: str) -> dict[str, Any]:
    """What `terraform apply` of the legacy lambda.tf left in the state."""
    role = f"{PREFIX}-reassembly-trigger-lambda"
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
    assume = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
            }
        ],
    }
    resources = [
        _resource(
            "aws_iam_role",
            "reassembly_trigger_lambda",
            {
                "id": role,
                "name": role,
                "arn": role_arn,
                "assume_role_policy": json.dumps(assume),
                "path": "/",
                "max_session_duration": 3600,
                "force_detach_policies": False,
                "unique_id": "AROAEXAMPLEEXAMPLE",
                "tags": {},
                "tags_all": {},
            },
        ),
        _resource(
            "aws_iam_role_policy",
            "reassembly_trigger_lambda",
            {
                "id": f"{role}:reassembly-trigger-lambda",
                "name": "reassembly-trigger-lambda",
                "role": role,
                "policy": "{}",
            },
        ),
        _resource(
            "aws_lambda_function",
            "reassembly_trigger",
            {
                "id": FUNCTION,
                "function_name": FUNCTION,
                "arn": function_arn,
                "qualified_arn": f"{function_arn}:$LATEST",
                "invoke_arn": f"arn:aws:apigateway:{REGION}:lambda:path/{function_arn}",
                "role": role_arn,
                "handler": "reassembly_trigger.handler.lambda_handler",
                "runtime": "python3.12",
                "filename": "../dist/deploy.zip",
                "source_code_hash": zip_hash,
                "timeout": 30,
                "memory_size": 256,
                "architectures": ["x86_64"],
                "package_type": "Zip",
                "publish": False,
                "version": "$LATEST",
                "environment": [
                    {
                        "variables": {
                            "JOBS_TABLE_NAME": f"{PREFIX}-jobs",
                            "SEGMENT_COMPLETIONS_TABLE_NAME": f"{PREFIX}-segment-completions",
                            "REASSEMBLY_TRIGGERED_TABLE_NAME": f"{PREFIX}-reassembly-triggered",
                            "REASSEMBLY_QUEUE_URL": QUEUE_URL,
                        }
                    }
                ],
                "tags": {},
                "tags_all": {},
            },
            index=0,
        ),
        _resource(
            "aws_lambda_event_source_mapping",
            "segment_completions_stream",
            {
                "id": "6f1a1b2c-0000-4000-8000-000000000001",
                "uuid": "6f1a1b2c-0000-4000-8000-000000000001",
                "event_source_arn": STREAM_ARN,
                "function_name": FUNCTION,
                "function_arn": function_arn,
                "starting_position": "LATEST",
                "batch_size": 100,
                "enabled": True,
                "maximum_retry_attempts": -1,
                "maximum_record_age_in_seconds": -1,
                "bisect_batch_on_function_error": False,
                "parallelization_factor": 1,
                "function_response_types": [],
                "state": "Enabled",
            },
            index=0,
        ),
    ]
    return {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 1,
        "lineage": "5d1c4b8e-0000-4000-8000-00000000abcd",
        "outputs": {},
        "resources": resources,
        "check_results": None,
    }


def plan_offline(workspace: Workspace) -> Plan:
    """`terraform plan -refresh=false` on the state as written: no AWS call."""
    result = workspace.run(
        "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false", "-out=plan.bin"
    )
    text = result.stdout + result.stderr
    if result.returncode != 0:
        return Plan(result.returncode, text, {})
    shown = workspace.run("show", "-json", "plan.bin")
    assert shown.returncode == 0, shown.stderr
    return Plan(0, text, json.loads(shown.stdout))


def actions(plan: Plan) -> dict[str, list[str]]:
    """Each planned address and its actions (["update"], ["delete", "create"], ...)."""
    return {
        change["address"]: change["change"]["actions"]
        for change in plan.planned.get("resource_changes", [])
    }


def previous(plan: Plan) -> dict[str, str]:
    """Each planned address and the address it was moved from (moved blocks)."""
    return {
        change["address"]: change["previous_address"]
        for change in plan.planned.get("resource_changes", [])
        if "previous_address" in change
    }


def with_state(where: Path, root_module: str, extra_files: dict[str, str]) -> Workspace:
    """A workspace for `root_module` (+ files), dist/deploy.zip built, the legacy state."""
    # One main.tf, so that the workspace's `terraform init` sees the module call.
    workspace = Workspace(where, "\n".join([root_module, *extra_files.values()]))
    zip_path = workspace.build_zip("python3.12", "x86_64", name="deploy.zip")
    import base64
    import hashlib

    zip_hash = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    state = legacy_state(zip_hash)
    (workspace.root / "terraform.tfstate").write_text(json.dumps(state, indent=2))
    return workspace


@pytest.mark.slow
@needs_provider
def test_the_legacy_root_plans_no_replacement_on_its_own_state(tmp_path: Path) -> None:
    """The baseline: the legacy lambda.tf on its state plans no destroy (so the state
    stands for the running deployment, and what the migration plans is the migration's)."""
    workspace = with_state(tmp_path, PROVIDER + INFRA, {"lambda.tf": LEGACY_LAMBDA_TF})
    plan = plan_offline(workspace)
    assert plan.returncode == 0, plan.text
    planned = actions(plan)
    assert "aws_lambda_function.reassembly_trigger[0]" in planned
    assert not [a for a, act in planned.items() if "delete" in act], planned


@pytest.mark.slow
@needs_provider
def test_the_module_migration_updates_function_and_mapping_and_replaces_only_the_role(
    tmp_path: Path,
) -> None:
    """GIVEN the legacy state WHEN lambda.tf is replaced by the guide's module call and
    moved blocks THEN the function and the mapping are updated in place at their new
    addresses (the mapping keeps its position on the stream) and only the role and its
    policy are replaced, as the guide names them; nothing else is destroyed."""
    migrated = guide_hcl("### The module call") + "\n" + guide_hcl("### The moved blocks")
    for reference, stand_in in STAND_INS.items():
        migrated = migrated.replace(reference, stand_in)
    workspace = with_state(tmp_path, PROVIDER + INFRA, {"reassembly_trigger.tf": migrated})
    plan = plan_offline(workspace)
    assert plan.returncode == 0, plan.text
    planned, moved = actions(plan), previous(plan)
    function = "module.reassembly_trigger.aws_lambda_function.trigger[0]"
    mapping = "module.reassembly_trigger.aws_lambda_event_source_mapping.segment_completions[0]"
    role = "module.reassembly_trigger.aws_iam_role.trigger[0]"
    policy = "module.reassembly_trigger.aws_iam_role_policy.trigger[0]"
    assert planned[function] == ["update"]
    assert planned[mapping] == ["update"]
    assert moved[function] == "aws_lambda_function.reassembly_trigger[0]"
    assert moved[mapping] == "aws_lambda_event_source_mapping.segment_completions_stream[0]"
    assert moved[role] == "aws_iam_role.reassembly_trigger_lambda"
    assert moved[policy] == "aws_iam_role_policy.reassembly_trigger_lambda"
    destroyed = sorted(a for a, act in planned.items() if "delete" in act)
    assert destroyed == sorted([policy, role])
    # The mapping now reports per-job failures, bisects, retries finitely, and sends
    # what it gives up on to the on-failure queue; it invokes the alias.
    after = plan.after(mapping)
    assert after["function_response_types"] == ["ReportBatchItemFailures"]
    assert after["bisect_batch_on_function_error"] is True
    assert after["starting_position"] == "LATEST"
    assert after["event_source_arn"] == STREAM_ARN
    # The function keeps its name; its timeout is the module's, not 30 s.
    assert plan.after(function)["function_name"] == FUNCTION
    assert plan.after(function)["timeout"] > 30
    # What the guide says is replaced is what is replaced.
    guide = GUIDE.read_text()
    for replaced in ("aws_iam_role.trigger[0]", "aws_iam_role_policy.trigger[0]"):
        assert f"`{replaced}`" in guide


@pytest.mark.slow
@needs_provider
def test_without_the_moved_blocks_the_function_and_mapping_would_be_destroyed(
    tmp_path: Path,
) -> None:
    """What the moved blocks prevent: the module call alone destroys the running function
    and its mapping (a new mapping starts at LATEST and skips what came meanwhile)."""
    migrated = guide_hcl("### The module call")
    for reference, stand_in in STAND_INS.items():
        migrated = migrated.replace(reference, stand_in)
    workspace = with_state(tmp_path, PROVIDER + INFRA, {"reassembly_trigger.tf": migrated})
    plan = plan_offline(workspace)
    assert plan.returncode == 0, plan.text
    planned = actions(plan)
    assert planned["aws_lambda_function.reassembly_trigger[0]"] == ["delete"]
    assert planned["aws_lambda_event_source_mapping.segment_completions_stream[0]"] == ["delete"]
