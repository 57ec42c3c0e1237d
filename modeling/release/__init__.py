"""The release: the model card written into a model folder, and the push of that folder to the Hub."""
