"""Repositories: git's read with real git (`process`, `parsing`, `repository`, `source`),
Mercurial's over HTTP with its pushlog (`hg`), both behind one call (`sources`)."""
