"""The controller: notices why a pipeline should run again and runs it, once per event."""
