"""How a job gets in: the save-and-publish of a task and its message (publishing, capture), idempotent submits,
callback URLs, the submit body's document, and a client's task listing."""
