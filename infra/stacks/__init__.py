"""The app's stacks: stateful resources apart from everything that can be replaced freely."""
