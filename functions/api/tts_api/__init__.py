"""The HTTP API: FastAPI routes over the task table, jobs queue and the audio bucket (Mangum on Lambda)."""
