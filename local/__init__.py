"""The local stack: moto in server mode standing in for AWS, and the service's processes on one machine."""
