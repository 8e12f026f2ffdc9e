"""Reliability tests of the memif library: fuzzing, hostile shared memory, peer kills."""
