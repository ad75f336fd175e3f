"""Git repositories read with real git: running git (`process`), what goes in and out
(`parsing`), cache repositories on disk (`repository`), branch heads and files (`source`)."""
