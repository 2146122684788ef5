"""The inference worker: one transport-agnostic core behind a Lambda SQS handler and an ECS long-poll loop."""
