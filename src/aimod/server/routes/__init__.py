"""The routers: one per family (``openai``: completions, chat completions, models; ``vision``), and ``service``."""
