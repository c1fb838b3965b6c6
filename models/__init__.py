"""The model library: GGUF metadata, the catalogue of local models, the bundled starter model, the Hub."""
