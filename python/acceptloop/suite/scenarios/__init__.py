"""The scenarios, one module per service or area; ORDER is the order the matrix shows them in."""
ORDER = ("echo", "discard", "chargen", "daytime", "message", "every_service", "concurrency", "leaks", "lifecycle",
         "startup", "robustness", "limits", "fuzz", "udp")
