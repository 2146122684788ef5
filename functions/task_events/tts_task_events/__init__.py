"""The lifecycle consumer: applies lifecycle messages to Task records; and the sweeper that unsticks tasks."""
