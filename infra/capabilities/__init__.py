"""One construct per capability; stacks wire them together and pass configuration in as parameters."""
