"""The CDK app that deploys the service: stacks compose one construct per capability (see docs/DEPLOY.md)."""
