"""Training jobs beyond `lightguard train`: fine-tunes held out per fold (`heldout`)."""
