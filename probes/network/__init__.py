"""Network probes, one per layer of the path to the payment host: link → gateway → DNS → TCP → TLS,
plus path quality. Each layer runs only when the one beneath it works, so the root stays visible."""
