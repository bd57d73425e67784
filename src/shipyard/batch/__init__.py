"""Batch prediction: files of any size streamed through the one predict path, resumable."""
