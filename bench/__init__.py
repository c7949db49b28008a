"""The benchmark suite of issue 5: `./bench/run.sh` (see bench/README.md)."""
