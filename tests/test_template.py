"""Checks of the deployment files: template.yaml (SAM), Dockerfile and .dockerignore.

`sam validate --lint` runs offline (fake credentials, a proxy that refuses every connection);
the rest reads the files and asserts the properties the service depends on.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# (path, method) -> whether API Gateway must demand an API key
ROUTES = {
    ("/healthz", "GET"): False,
    ("/docs", "GET"): False,
    ("/openapi.json", "GET"): False,
    ("/", "GET"): False,  # the try-it page
    ("/static/{proxy+}", "GET"): False,
    ("/v1/attributes", "GET"): True,
    ("/v1/analyze", "POST"): True,
    ("/v1/edit", "POST"): True,
    ("/v1/generate", "POST"): True,
    ("/v1/interpolate", "POST"): True,
}
POWERTOOLS_ENV = {
    "POWERTOOLS_SERVICE_NAME": "face-interpolator",
    "POWERTOOLS_METRICS_NAMESPACE": "FaceInterpolator",
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
}
SAM_TIMEOUT_S = 300


# --- template loading --------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) as the long
    form ({"Ref": ...}, {"Fn::Sub": ...}), the way CloudFormation itself reads them."""


def _construct_cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)


def _only_resource_of_type(template: dict, resource_type: str) -> tuple[str, dict]:
    found = [(name, r) for name, r in template["Resources"].items() if r["Type"] == resource_type]
    assert len(found) == 1, f"expected exactly one {resource_type}, found {[n for n, _ in found]}"
    return found[0]


@pytest.fixture(scope="module")
def function(template) -> tuple[str, dict]:
    return _only_resource_of_type(template, "AWS::Serverless::Function")


@pytest.fixture(scope="module")
def api(template) -> tuple[str, dict]:
    return _only_resource_of_type(template, "AWS::Serverless::Api")


def _function_setting(template: dict, function: tuple[str, dict], key: str):
    """A function property, falling back to Globals.Function as SAM does."""
    _, resource = function
    if key in resource["Properties"]:
        return resource["Properties"][key]
    return template.get("Globals", {}).get("Function", {}).get(key)


def _function_env(template: dict, function: tuple[str, dict]) -> dict:
    """Environment variables as SAM merges them: Globals first, the function's own on top."""
    _, resource = function
    merged = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    merged.update(resource["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


# --- sam validate --lint -----------------------------------------------------------------------


def _find_sam() -> str | None:
    if os.environ.get("SAM_CLI"):
        return os.environ["SAM_CLI"]
    local = REPO / ".venv-sam" / "bin" / "sam"
    if local.exists():
        return str(local)
    return shutil.which("sam")


def _offline_env(home: Path) -> dict:
    """The environment for the SAM CLI: fake credentials and region, no telemetry, and a proxy on
    a closed local port so that any HTTP attempt (SAM's weekly version check) fails at once."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    refuse = "http://127.0.0.1:9"
    env.update(
        HOME=str(home),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
        HTTP_PROXY=refuse,
        HTTPS_PROXY=refuse,
        ALL_PROXY=refuse,
    )
    return env


def test_sam_validate_lint(tmp_path):
    sam = _find_sam()
    if sam is None:
        message = (
            "SAM CLI not found: set SAM_CLI, or install it with "
            "`python3 -m venv .venv-sam && .venv-sam/bin/pip install aws-sam-cli`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    result = subprocess.run(
        [sam, "validate", "--lint", "--template", str(TEMPLATE), "--region", "us-east-1"],
        cwd=REPO,
        env=_offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=SAM_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"sam validate --lint failed:\n{output}"
    assert "is a valid SAM Template" in output, output


# --- function ----------------------------------------------------------------------------------


def test_function_is_a_container_image_built_from_the_dockerfile(function):
    _, resource = function
    assert resource["Properties"]["PackageType"] == "Image"
    assert resource["Metadata"]["Dockerfile"] == "Dockerfile"
    assert resource["Metadata"]["DockerContext"] == "."
    assert resource["Metadata"]["DockerTag"]
    # with an image, the handler and runtime come from the Dockerfile, not the template
    assert "Handler" not in resource["Properties"]
    assert "Runtime" not in resource["Properties"]


def test_function_runtime_settings(template, function):
    assert _function_setting(template, function, "Tracing") == "Active"
    assert _function_setting(template, function, "Architectures") == ["x86_64"]

    timeout = _function_setting(template, function, "Timeout")
    assert isinstance(timeout, int) and 10 <= timeout <= 29, "API Gateway's REST integration gives up at 29 s"

    memory = _function_setting(template, function, "MemorySize")
    assert memory == {"Ref": "MemorySize"}
    memory_param = template["Parameters"]["MemorySize"]
    assert memory_param["Default"] >= 2048, "torch CPU inference needs at least 2 GB"
    assert memory_param["MaxValue"] <= 10240


def test_function_environment(template, function):
    env = _function_env(template, function)
    for name, value in POWERTOOLS_ENV.items():
        assert env.get(name) == value, name
    assert env["MODEL_DIR"] == "/opt/model"
    assert env["LOG_LEVEL"] == {"Ref": "LogLevel"}
    for name in ("MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS"):
        assert str(env[name]).isdigit(), f"{name} must be a plain integer string"


# --- results bucket, usage and idempotency tables ---------------------------------------------


def test_results_bucket_is_private_encrypted_and_expires_results_after_a_day(template):
    name, bucket = _only_resource_of_type(template, "AWS::S3::Bucket")
    props = bucket["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = props["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                          "RestrictPublicBuckets"))
    rules = [r for r in props["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    assert any(r.get("ExpirationInDays") == 1 and "Prefix" not in r and "Filter" not in r for r in rules)
    ttl = template["Parameters"]["ResultUrlTtlSeconds"]
    assert ttl["MaxValue"] <= 86400 and ttl["Default"] <= ttl["MaxValue"], "URLs must not outlive the objects"


def test_tables_keys_and_expiry(template):
    tables = {n: r["Properties"] for n, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    usage, idempotency = tables["UsageTable"], tables["IdempotencyTable"]
    assert usage["BillingMode"] == idempotency["BillingMode"] == "PAY_PER_REQUEST"
    assert usage["KeySchema"] == [{"AttributeName": "api_key_id", "KeyType": "HASH"},
                                  {"AttributeName": "month", "KeyType": "RANGE"}]
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert template["Resources"]["UsageTable"]["DeletionPolicy"] == "Retain", "billing data"


def test_function_gets_the_resource_names_and_least_privilege(template, function):
    env = _function_env(template, function)
    assert env["RESULTS_BUCKET"] == {"Ref": "ResultsBucket"}
    assert env["USAGE_TABLE"] == {"Ref": "UsageTable"}
    assert env["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    _, resource = function
    statements = [st for policy in resource["Properties"]["Policies"] for st in policy["Statement"]]
    granted = {}
    for st in statements:
        assert st["Effect"] == "Allow" and "*" not in json.dumps(st["Action"]), st
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        granted[json.dumps(st["Resource"], sort_keys=True)] = set(actions)
    assert granted == {
        json.dumps({"Fn::Sub": "${ResultsBucket.Arn}/*"}): {"s3:PutObject", "s3:GetObject"},
        json.dumps({"Fn::GetAtt": ["UsageTable", "Arn"]}): {"dynamodb:UpdateItem"},
        json.dumps({"Fn::GetAtt": ["IdempotencyTable", "Arn"]}): {"dynamodb:GetItem", "dynamodb:PutItem",
                                                                  "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    }


# --- API ---------------------------------------------------------------------------------------


def test_routes_and_api_keys(function, api):
    api_id, api_resource = api
    api_default = api_resource["Properties"]["Auth"]["ApiKeyRequired"]
    assert api_default is True, "keys must be required unless a route opts out"

    _, resource = function
    seen = {}
    for name, event in resource["Properties"]["Events"].items():
        assert event["Type"] == "Api", name
        props = event["Properties"]
        assert props["RestApiId"] == {"Ref": api_id}, f"{name} must be on {api_id}, not SAM's implicit API"
        key_required = props.get("Auth", {}).get("ApiKeyRequired", api_default)
        seen[(props["Path"], props["Method"].upper())] = key_required

    assert seen == ROUTES
    # any route added later under /v1 is protected too
    assert all(required for (path, _), required in seen.items() if path.startswith("/v1/"))


def test_usage_plan_uses_the_parameters(template, api):
    _, api_resource = api
    plan = api_resource["Properties"]["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Quota"] == {"Limit": {"Ref": "QuotaLimit"}, "Period": {"Ref": "QuotaPeriod"}}
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ThrottleRateLimit"},
        "BurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    params = template["Parameters"]
    assert params["QuotaPeriod"]["Default"] == "MONTH"
    assert params["QuotaLimit"]["Default"] > 0
    for name in ("ThrottleRateLimit", "ThrottleBurstLimit", "StageName", "LogLevel"):
        assert name in params, name


def test_api_stage_tracing_and_binary_media_types(api):
    _, api_resource = api
    props = api_resource["Properties"]
    assert props["StageName"] == {"Ref": "StageName"}
    assert props["TracingEnabled"] is True
    binary = {media_type.replace("~1", "/") for media_type in props["BinaryMediaTypes"]}
    for media_type in ("image/png", "image/jpeg", "multipart/form-data"):
        assert media_type in binary, media_type


def test_stage_throttles_and_never_logs_bodies(api):
    _, api_resource = api
    settings = api_resource["Properties"]["MethodSettings"]
    stage_wide = [s for s in settings if s["ResourcePath"] == "/*" and s["HttpMethod"] == "*"]
    assert len(stage_wide) == 1
    assert "ThrottlingRateLimit" in stage_wide[0] and "ThrottlingBurstLimit" in stage_wide[0]
    assert all(s.get("DataTraceEnabled") is False for s in settings), "request bodies are people's photos"


def _render_gateway_template(text: str) -> dict:
    """Fill the API Gateway variables the way API Gateway would and parse the JSON."""
    text = text.replace("$context.error.messageString", json.dumps("Forbidden"))
    text = text.replace("$context.requestId", "c0ffee00-0000-4000-8000-000000000000")
    assert "$" not in text, f"unrendered variable left in {text!r}"
    return json.loads(text)


@pytest.mark.parametrize(
    ("response_type", "status"),
    [("INVALID_API_KEY", 403), ("QUOTA_EXCEEDED", 429), ("THROTTLED", 429), ("REQUEST_TOO_LARGE", 413)],
)
def test_gateway_errors_have_the_app_error_shape(api, response_type, status):
    _, api_resource = api
    response = api_resource["Properties"]["GatewayResponses"][response_type]
    assert int(response["StatusCode"]) == status
    assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/json'"
    body = _render_gateway_template(response["ResponseTemplates"]["application/json"])
    assert re.fullmatch(r"[a-z_]+", body["error"]["code"])
    assert body["error"]["message"]


def test_every_gateway_response_renders_to_json(api):
    _, api_resource = api
    responses = api_resource["Properties"]["GatewayResponses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    for response_type, response in responses.items():
        for content_type, text in response["ResponseTemplates"].items():
            body = _render_gateway_template(text)
            assert set(body) == {"error"}, response_type
            assert {"code", "message"} <= set(body["error"]), f"{response_type} {content_type}"


def test_outputs(template, function, api):
    function_id, _ = function
    api_id, _ = api
    outputs = template["Outputs"]
    assert api_id in outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": [function_id, "Arn"]}
    # CreateUsagePlan: PER_API generates <ApiLogicalId>ApiKey, referable as <ApiLogicalId>.ApiKey
    assert outputs["ApiKeyId"]["Value"] in ({"Ref": f"{api_id}.ApiKey"}, {"Ref": f"{api_id}ApiKey"})


# --- Dockerfile --------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    instructions = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _pip_installs() -> list[list[str]]:
    """The argument lists of every `pip install` in a RUN instruction."""
    installs = []
    for keyword, args in _dockerfile_instructions():
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
                installs.append(words[words.index("install") + 1 :])
    return installs


def _requirement_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dockerfile_base_image_and_entry_point():
    instructions = _dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) == 1
    # 3.12 or later: the 3.8-3.11 images are Amazon Linux 2 (glibc 2.26), too old for torch's
    # manylinux_2_28 wheels
    assert re.fullmatch(r"public\.ecr\.aws/lambda/python:3\.(1[2-9]|[2-9]\d)", froms[0]), froms[0]
    cmds = [args for keyword, args in instructions if keyword == "CMD"]
    assert len(cmds) == 1 and json.loads(cmds[0]) == ["handler.main.handler"]


def test_dockerfile_installs_cpu_torch_first_then_the_locked_set():
    """torch from requirements/torch-cpu.txt (the CPU build and its index, declared there once), then the hashed
    runtime lock; tests/test_lock.py checks those files against pyproject.toml."""
    installs = _pip_installs()
    assert installs[0] == ["--no-cache-dir", "--no-deps", "-r", "/tmp/requirements/torch-cpu.txt"], installs
    assert ["--no-cache-dir", "--no-deps", "--require-hashes", "-r", "/tmp/requirements/runtime.lock"] in installs
    everything = [_requirement_name(a) for install in installs for a in install if a[0] != "-" and "://" not in a
                  and not a.startswith("/")]
    assert not everything, f"packages by name, outside the lock: {everything}"
    assert "." not in [a for install in installs for a in install], "install packages from the lock, not the project"


def test_dockerfile_copies_the_model_and_the_handler():
    instructions = _dockerfile_instructions()
    copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
    assert ["layers/model/", "/opt/model/"] in copies or ["layers/model", "/opt/model"] in copies
    assert any(srcs == ["handler/"] and dest.startswith("${LAMBDA_TASK_ROOT}/handler") for *srcs, dest in copies)
    envs = [args for keyword, args in instructions if keyword == "ENV"]
    assert any(re.fullmatch(r"MODEL_DIR[= ]/opt/model/?", env) for env in envs)


def test_dockerignore_sends_only_the_handler_and_the_model():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: exclude everything first"
    assert "!handler/" in patterns
    assert "!layers/model/" in patterns
