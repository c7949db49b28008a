"""A small Vault-API-compatible server for tests and the local demo.

No Vault can be installed on the development machines, so this package answers the handful of
Vault endpoints the gateway uses with Vault's own paths, shapes, status codes and error texts,
driven through hvac exactly as a real Vault would be. It is never shipped in the production image.
See README.md in this folder for the seed format and the commands.
"""
