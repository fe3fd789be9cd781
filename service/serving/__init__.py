"""The live index state of one worker and its scheduling: runtime, micro-batching, encoders, following other workers."""
