"""Running models: the engine service, sampling, chat templates, hardware. No Qt here."""
