"""Notices of what happened, in words: the `reporter` builds them from what the watcher,
engine or expiry watch saw, with the words of `wording`. Pure.
"""
