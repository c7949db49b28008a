"""Names of the custom message headers the gateway sets and the workers read."""

# The client that submitted the job, so worker log lines carry it (SPEC §6).
CLIENT_HEADER = "gateway_client_id"
