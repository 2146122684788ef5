"""The only modules that import boto3 or PynamoDB. Logic talks to these classes, never to AWS directly."""
