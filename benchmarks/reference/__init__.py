"""Third-party reference implementations, kept unchanged (source and licence in each file's header)."""
