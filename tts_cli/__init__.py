"""`tts`, the service's command-line client: speak a text and save the audio, follow and fetch conversions."""
