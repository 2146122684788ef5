"""The webhook notifier: another subscriber on the lifecycle channel, which POSTs a signed notification to a
task's callback_url when it ends done or failed (tts_notifier.logic)."""
