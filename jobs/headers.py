"""Names of the custom message headers the gateway sets and the workers read."""

# The client that submitted the job, so worker log lines carry it (SPEC §6).
CLIENT_HEADER = "gateway_client_id"
# The job type (a task may serve several types), for outcome counts per type.
JOB_TYPE_HEADER = "gateway_job_type"
# When the gateway published the message (epoch seconds), for the age of the oldest waiting message.
SUBMITTED_HEADER = "gateway_submitted_at"
# Where to POST the TaskInfo when the job ends (completion webhooks, tasks/webhooks.py).
CALLBACK_HEADER = "gateway_callback_url"
