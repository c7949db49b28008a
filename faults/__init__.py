"""The fault suite (issue 13): scenarios that start their own stack, run load, break a real process,
and check that every acknowledged job ends in exactly one honest terminal state. `./faults/run.sh`."""
