"""The expiry watch: the cached tasks (toolchains, docker images, fetches) that expire soon,
found by a scan (`scan`), judged by the risk model (`model`), rebuilt by `remediation`."""
