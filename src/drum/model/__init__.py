"""The user's model: discovery, metadata, hooks, artifacts, codecs and output marshalling."""
