"""The only modules that import boto3 or PynamoDB. Logic talks to these classes, never to AWS directly."""

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

# What a call into an adapter raises when AWS (or moto) did not answer as asked; logic catches this tuple
# instead of importing the libraries, so that its own bugs still surface as 500s.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError, PynamoDBException)
