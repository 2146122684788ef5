"""The jobs queue and both worker modes: Lambda (CPU image) and ECS (GPU), scaled on the backlog."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from infra_helpers import Assembly, actions_of, policy_statements_of_role, render

from infra import constants
from infra.capabilities.ecs_worker import backlog_capacity_steps

pytestmark = pytest.mark.infra


def queue_with_redrive(app: Assembly, logical_prefix: str) -> dict[str, Any]:
    queues = {
        logical_id: q
        for logical_id, q in app.resources(app.service_name, "AWS::SQS::Queue").items()
        if logical_id.startswith(logical_prefix) and "RedrivePolicy" in q["Properties"]
    }
    assert len(queues) == 1, sorted(queues)
    return next(iter(queues.values()))


def worker_function(app: Assembly) -> dict[str, Any]:
    functions = [
        fn
        for fn in app.resources(app.service_name, "AWS::Lambda::Function").values()
        if fn["Properties"].get("PackageType") == "Image"
    ]
    assert len(functions) == 1
    return functions[0]


def worker_container(app: Assembly) -> dict[str, Any]:
    task = app.only(app.service_name, "AWS::ECS::TaskDefinition")
    return next(c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "Worker")


@pytest.mark.parametrize("mode", ["lambda", "ecs"])
def test_jobs_queue_dead_letters_after_max_receives(mode: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(f"{mode}_app")
    jobs = queue_with_redrive(app, "Jobs")["Properties"]
    assert jobs["RedrivePolicy"]["maxReceiveCount"] == app.config.max_receive_count
    assert jobs["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0].startswith("JobsDeadLetterQueue")
    assert jobs["SqsManagedSseEnabled"] is True
    assert jobs["VisibilityTimeout"] >= 6 * app.config.worker_timeout_s


def test_every_queue_is_encrypted_and_tls_only(any_app: Assembly) -> None:
    queues = any_app.resources(any_app.service_name, "AWS::SQS::Queue")
    # jobs, parts (fan-out), events, notifications (webhooks) and their dead-letter queues
    assert len(queues) == 8
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    policies = any_app.resources(any_app.service_name, "AWS::SQS::QueuePolicy").values()
    denied = render([p for p in policies if '"aws:SecureTransport": "false"' in render(p)])
    for logical_id in queues:
        assert logical_id in denied, f"{logical_id} accepts plain HTTP"


def test_lambda_worker_is_the_cpu_image_with_its_limits(lambda_app: Assembly) -> None:
    config = lambda_app.config
    props = worker_function(lambda_app)["Properties"]
    assert props["MemorySize"] == config.worker_memory_mb
    assert props["Timeout"] == config.worker_timeout_s
    assert props["Architectures"] == ["x86_64"]
    assert (
        "ReservedConcurrentExecutions" not in props
    )  # unset by default: new accounts have no room to reserve
    images = lambda_app.assets(lambda_app.service_name)["dockerImages"]
    assert [image["source"]["dockerBuildTarget"] for image in images.values()] == [
        constants.LAMBDA_IMAGE_TARGET
    ]
    source = next(iter(images.values()))["source"]
    assert source["dockerFile"] == constants.INFERENCE_DOCKERFILE
    assert source["platform"] == "linux/amd64"
    # Every served language's model is baked in by default (image_languages)
    assert source["dockerBuildArgs"] == {"TTS_MODELS": ",".join(lambda_app.config.image_model_ids)}
    assert lambda_app.config.image_model_ids == ("facebook/mms-tts-fin",)


def test_lambda_worker_environment_matches_the_queue(lambda_app: Assembly) -> None:
    env = worker_function(lambda_app)["Properties"]["Environment"]["Variables"]
    jobs = queue_with_redrive(lambda_app, "Jobs")["Properties"]
    assert env["MAX_RECEIVE_COUNT"] == str(jobs["RedrivePolicy"]["maxReceiveCount"])
    assert env["VISIBILITY_TIMEOUT_S"] == str(jobs["VisibilityTimeout"])
    assert env["TTS_DEVICE"] == "cpu"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "TTS_MODEL" not in env  # each job names its model (its voice's model_id)
    # The image's models, then the store; the default language's model warmed at start; room in /tmp.
    assert env["TTS_IMAGE_MODELS_DIR"] == constants.IMAGE_MODELS_DIR
    assert env["TTS_MODEL_STORE_PREFIX"] == lambda_app.config.model_store_prefix
    assert env["TTS_PRELOAD_MODELS"] == "facebook/mms-tts-fin"
    props = worker_function(lambda_app)["Properties"]
    assert props["EphemeralStorage"]["Size"] == lambda_app.config.worker_ephemeral_storage_mb
    assert {"TTS_DTYPE", "TTS_MAX_BATCH", "TTS_MAX_WAIT_MS", "JOBS_QUEUE_URL", "EVENTS_TOPIC_ARN"} <= set(env)


def test_lambda_worker_consumes_batches_with_partial_failures(lambda_app: Assembly) -> None:
    config = lambda_app.config
    lambda_app.service.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^JobsQueue"), "Arn"]},
            "BatchSize": config.worker_batch_size,
            "MaximumBatchingWindowInSeconds": config.worker_batch_window_s,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": config.worker_max_concurrency},
        },
    )


def test_reserved_concurrency_is_configurable(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Built, not synthesized: the property is fixed at construction.
    from aws_cdk import Stack
    from aws_cdk import aws_lambda as lambda_

    from infra.app import build_app

    app, _ = build_app(
        context={"layer_bundling": "skip", "worker_reserved_concurrency": "3", "worker_max_concurrency": "3"},
        outdir=str(tmp_path_factory.mktemp("cdk-reserved")),
    )
    worker = next(
        c for c in app.node.find_all() if isinstance(c, lambda_.CfnFunction) and c.package_type == "Image"
    )
    assert Stack.of(worker).resolve(worker.reserved_concurrent_executions) == 3


def test_worker_role_reads_inputs_writes_audio_and_publishes(lambda_app: Assembly) -> None:
    role_id = worker_function(lambda_app)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = policy_statements_of_role(lambda_app, role_id)
    resources_by_action: dict[str, str] = {}
    for statement in statements:
        for action in actions_of(statement):
            resources_by_action[action] = resources_by_action.get(action, "") + render(statement["Resource"])
    assert "/audio/*" in resources_by_action["s3:PutObject"]
    assert "/inputs/*" not in resources_by_action["s3:PutObject"]
    assert "/inputs/*" in resources_by_action["s3:GetObject"]
    assert f"/{lambda_app.config.model_store_prefix}*" in resources_by_action["s3:GetObject"]
    assert "sns:Publish" in resources_by_action
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= set(
        resources_by_action
    )
    # It looks a job's task up (a job for no task is dropped) and never writes a task or queries indexes:
    # its only writes are the fan-out's plan items (pk plan#<task>), by a LeadingKeys condition.
    assert {a for a in resources_by_action if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert "index" not in resources_by_action["dynamodb:GetItem"]
    [plan_writes] = [s for s in statements if "dynamodb:UpdateItem" in actions_of(s)]
    assert plan_writes["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["plan#*"]}}
    assert set(actions_of(plan_writes)) == {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    # Fan-out: the parts under parts/, the join's multipart upload, part and join jobs on both queues.
    assert "/parts/*" in resources_by_action["s3:DeleteObject"]
    assert "/audio/*" in resources_by_action["s3:AbortMultipartUpload"]
    assert "sqs:SendMessage" in resources_by_action


def test_the_lambda_worker_takes_parts_one_at_a_time_below_its_job_concurrency(lambda_app: Assembly) -> None:
    mappings = lambda_app.resources(lambda_app.service_name, "AWS::Lambda::EventSourceMapping")
    worker_mappings = [
        m["Properties"]
        for m in mappings.values()
        if "Parts" in render(m["Properties"]["EventSourceArn"]) and "DeadLetter" not in render(m)
    ]
    [parts] = worker_mappings
    assert parts["BatchSize"] == 1
    assert parts["ScalingConfig"]["MaximumConcurrency"] < lambda_app.config.worker_max_concurrency
    worker = worker_function(lambda_app)["Properties"]["Environment"]["Variables"]
    assert "PARTS_QUEUE_URL" in worker


def test_ecs_cluster_runs_on_gpu_instances_from_the_gpu_ami(ecs_app: Assembly) -> None:
    template = ecs_app.templates[ecs_app.service_name]
    launch = ecs_app.only(ecs_app.service_name, "AWS::EC2::LaunchTemplate")["Properties"][
        "LaunchTemplateData"
    ]
    assert launch["InstanceType"] == "g5.xlarge"
    assert launch["MetadataOptions"]["HttpTokens"] == "required"
    assert launch["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    image_parameter = launch["ImageId"]["Ref"]
    assert template["Parameters"][image_parameter]["Default"] == (
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    )
    asg = ecs_app.only(ecs_app.service_name, "AWS::AutoScaling::AutoScalingGroup")["Properties"]
    assert asg["MinSize"] == "0"
    assert asg["MaxSize"] == str(ecs_app.config.ecs_max_tasks)
    ecs_app.service.has_resource_properties(
        "AWS::ECS::CapacityProvider",
        {
            "AutoScalingGroupProvider": {
                "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
                "ManagedTerminationProtection": "ENABLED",
            }
        },
    )
    ecs_app.service.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )


def test_ecs_task_takes_one_gpu_and_the_cuda_image(ecs_app: Assembly) -> None:
    container = worker_container(ecs_app)
    assert container["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    env = {pair["Name"]: pair["Value"] for pair in container["Environment"]}
    assert env["TTS_DEVICE"] == "cuda"
    assert env["AWS_REGION"] == {"Ref": "AWS::Region"}
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["MAX_RECEIVE_COUNT"] == str(ecs_app.config.max_receive_count)
    # Powertools metrics (EMF) leave through Fluent Bit with the EMF header.
    assert container["LogConfiguration"]["LogDriver"] == "awsfirelens"
    assert container["LogConfiguration"]["Options"]["log_format"] == "json/emf"
    images = ecs_app.assets(ecs_app.service_name)["dockerImages"]
    assert [image["source"]["dockerBuildTarget"] for image in images.values()] == [constants.ECS_IMAGE_TARGET]


def test_ecs_task_role_consumes_the_jobs_queue(ecs_app: Assembly) -> None:
    task = ecs_app.only(ecs_app.service_name, "AWS::ECS::TaskDefinition")
    role_id = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    actions = {a for s in policy_statements_of_role(ecs_app, role_id) for a in actions_of(s)}
    assert {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sns:Publish",
        "dynamodb:GetItem",
    } <= actions
    assert {"s3:PutObject", "s3:GetObject"} <= actions


def test_ecs_service_scales_to_zero_on_the_backlog(ecs_app: Assembly) -> None:
    config = ecs_app.config
    ecs_app.service.has_resource_properties("AWS::ECS::Service", {"DesiredCount": 0})
    ecs_app.service.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": 0,
            "MaxCapacity": config.ecs_max_tasks,
            "ScalableDimension": "ecs:service:DesiredCount",
        },
    )
    policies = ecs_app.resources(ecs_app.service_name, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    adjustments = sorted(
        step["ScalingAdjustment"]
        for policy in policies
        for step in policy["Properties"]["StepScalingPolicyConfiguration"]["StepAdjustments"]
    )
    assert all(
        p["Properties"]["StepScalingPolicyConfiguration"]["AdjustmentType"] == "ExactCapacity"
        for p in policies
    )
    assert adjustments == backlog_capacity_steps(config.ecs_max_tasks)
    # The alarms watch tasks wanted = ceil((visible + in flight) / backlog per task + parts visible + in
    # flight): a long text's part (fan-out) is a task's worth of work.
    alarms = render(ecs_app.resources(ecs_app.service_name, "AWS::CloudWatch::Alarm"))
    assert f"/ {config.ecs_backlog_per_task} + FILL(parts, 0) + FILL(partsinflight, 0))" in alarms
    assert "ApproximateNumberOfMessagesNotVisible" in alarms


def test_lambda_mode_has_no_ecs_and_ecs_mode_no_worker_function(
    lambda_app: Assembly, ecs_app: Assembly
) -> None:
    lambda_app.service.resource_count_is("AWS::ECS::Cluster", 0)
    lambda_app.service.resource_count_is("AWS::EC2::VPC", 0)
    ecs_app.service.resource_count_is("AWS::ECS::Service", 1)
    assert not [
        fn
        for fn in ecs_app.resources(ecs_app.service_name, "AWS::Lambda::Function").values()
        if fn["Properties"].get("PackageType") == "Image"
    ]


def test_image_asset_stages_only_the_build_context(lambda_app: Assembly) -> None:
    source = next(iter(lambda_app.assets(lambda_app.service_name)["dockerImages"].values()))["source"]
    staged = lambda_app.outdir / source["directory"]
    top_level = sorted(p.name for p in staged.iterdir())
    assert top_level == sorted(
        [".dockerignore", "Dockerfile.inference", "README.md", "functions", "layers", "pyproject.toml"]
    )
    assert sorted(p.name for p in (staged / "functions").iterdir()) == ["worker"]
