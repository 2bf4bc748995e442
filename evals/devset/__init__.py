"""Development set from text that ships in packages (not evaluation data): see build.py."""
